"""``hive keys`` and ``hive audit``: the HTTP API's keys, and the record of what was changed."""

from __future__ import annotations

import click

from hive.cli.base import DurationType, as_typed, echo_json, group, json_option, parse_since, table

# service.api_keys.EXPIRES_MAX_S (tests/unit/test_cli_durations.py holds them equal).
EXPIRES_MAX_S = 100 * 365 * 86400.0

_ROLES = ["viewer", "producer", "admin"]


@group()
def keys() -> None:
    """API keys of `hive api`: create (shown once), list, revoke."""


@keys.command("create")
@click.option("--tenant", default=None, help="The tenant the key acts for.")
@click.option("--role", type=click.Choice(_ROLES), default=None,
              help="viewer reads; producer also submits, cancels; admin also manages.")  # fmt: skip
@click.option("--all-tenants", is_flag=True,
              help="An operator key: every tenant and right (no --tenant/--role).")  # fmt: skip
@click.option("--name", default=None, help="What the key is for (shown by `keys list`).")
@click.option("--expires", type=DurationType(EXPIRES_MAX_S), default=None,
              help="Expire after 30d, 12h... (at most 36500d) [never]")  # fmt: skip
@json_option
def keys_create(
    tenant: str | None,
    role: str | None,
    all_tenants: bool,
    name: str | None,
    expires: float | None,
    as_json: bool,
) -> None:
    """Create a key and print it: the only time it is shown (only its hash is stored)."""
    from hive import service
    from hive.settings import get_settings

    if all_tenants and (tenant is not None or role is not None):
        raise click.UsageError("--all-tenants makes an operator key: give no --tenant or --role")
    if not all_tenants and (tenant is None or role is None):
        raise click.UsageError("give --tenant and --role (or --all-tenants for an operator key)")
    typed = {"tenant": "--tenant", "role": "--role", "name": "--name", "expires_in_s": "--expires"}
    with as_typed(typed):
        made = service.create_api_key(
            get_settings(), service.OPERATOR, tenant=tenant, role=role or service.Role.OPERATOR,
            name=name, expires_in_s=expires,
        )  # fmt: skip
    if as_json:
        echo_json({**made.view.to_json(), "key": made.key})
        return
    click.echo(made.key)
    click.echo(
        f"key {made.view.id}: {made.view.role} of {made.view.tenant or 'every tenant'}"
        f"{', expires ' + made.view.expires_at.isoformat() if made.view.expires_at else ''}. "
        "Store it now: it is not shown again.",
        err=True,
    )


@keys.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """Every key (never the key itself): id, tenant, role, status, last use."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_api_keys(get_settings(), service.OPERATOR)
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (
            v.id, v.tenant or "*", v.role, v.status, v.name or "-",
            v.created_at.isoformat(timespec="seconds"),
            v.last_used_at.isoformat(timespec="seconds") if v.last_used_at else "-",
        )
        for v in views
    ]  # fmt: skip
    table(["ID", "TENANT", "ROLE", "STATUS", "NAME", "CREATED", "LAST USED"], rows)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: it authenticates nothing from now on."""
    from hive import service
    from hive.settings import get_settings

    view = service.revoke_api_key(get_settings(), service.OPERATOR, key_id)
    click.echo(f"key {view.id} revoked at {view.revoked_at.isoformat() if view.revoked_at else ''}")


@group()
def audit() -> None:
    """The audit trail: every change made through the API or to its keys."""


@audit.command("list")
@click.option("--tenant", default=None, help="Only this tenant's records.")
@click.option("--since", default=None, help="30m, 2h, 7d (ago) or an ISO timestamp.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
def audit_list(tenant: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """Audit records, newest first."""
    from hive import service
    from hive.settings import get_settings

    with as_typed({"tenant": "--tenant", "since": "--since", "limit": "--limit"}):
        views = service.list_audit(
            get_settings(), service.OPERATOR, tenant=tenant,
            since=parse_since(since) if since else None, limit=limit,
        )  # fmt: skip
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (
            v.at.isoformat(timespec="seconds"), v.key_id or "-", v.tenant or "-", v.role,
            v.action, v.target or "-", v.outcome, v.client or "-",
        )
        for v in views
    ]  # fmt: skip
    table(["AT", "KEY", "TENANT", "ROLE", "ACTION", "TARGET", "OUTCOME", "CLIENT"], rows)
