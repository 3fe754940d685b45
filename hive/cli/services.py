"""``hive services``: the service registry (the services agents call) and its health."""

from __future__ import annotations

import click

from hive.cli.base import DurationType, as_typed, echo_json, group, json_option, table

# service.service_args.DURATION_MAX_S (tests/unit/test_cli_durations.py holds them equal).
DURATION_MAX_S = 365 * 86400.0

_STATUSES = ("passing", "warning", "critical")
# The service's names for register's arguments (the client's and the API's): the options.
_REGISTER_OPTIONS = {
    "url": "--url",
    "health_url": "--health-url",
    "ttl_s": "--ttl",
    "deregister_after_s": "--deregister-after",
    "meta": "--meta",
    "instance id": "--id",
}


def _meta(values: tuple[str, ...]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        meta[key] = value
    return meta


@group()
def services() -> None:
    """The service registry: instances of the services agents call, and their health."""


@services.command("register")
@click.argument("name")
@click.option("--url", required=True, help="The instance's address (http:// or https://).")
@click.option("--health-url", default=None, help="Probed by beat: 2xx passing, 429 warning.")
@click.option("--ttl", type=DurationType(DURATION_MAX_S), default=None,
              help="Critical without a heartbeat this long (at most 365d).")  # fmt: skip
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata; repeat for more.")
@click.option("--id", "instance_id", default=None, help="The instance id (default: a new one).")
@click.option(
    "--deregister-after",
    type=DurationType(DURATION_MAX_S),
    default=None,
    help="Deregistered after critical this long (at most 365d).",
)
def services_register(
    name: str,
    url: str,
    health_url: str | None,
    ttl: float | None,
    meta: tuple[str, ...],
    instance_id: str | None,
    deregister_after: float | None,
) -> None:
    """Register an instance of service NAME (again: update it); prints its id."""
    from hive import service
    from hive.settings import get_settings

    with as_typed(_REGISTER_OPTIONS):
        registered = service.register_service(
            get_settings(), service.OPERATOR, name, url, health_url=health_url, ttl_s=ttl,
            deregister_after_s=deregister_after, meta=_meta(meta), instance_id=instance_id,
        )  # fmt: skip
    click.echo(registered)


@services.command("heartbeat")
@click.argument("instance_id")
def services_heartbeat(instance_id: str) -> None:
    """The instance is alive: its TTL check passes. Prints its status."""
    from hive import service
    from hive.settings import get_settings

    view = service.heartbeat_service(get_settings(), service.OPERATOR, instance_id)
    click.echo(f"{view.id} {view.status}")


@services.command("deregister")
@click.argument("instance_id")
def services_deregister(instance_id: str) -> None:
    """Remove the instance from the registry."""
    from hive import service
    from hive.settings import get_settings

    service.deregister_service(get_settings(), service.OPERATOR, instance_id)
    click.echo(f"{instance_id} deregistered")


@services.command("list")
@click.argument("name", required=False)
@click.option("--status", type=click.Choice(_STATUSES), default=None)
@json_option
def services_list(name: str | None, status: str | None, as_json: bool) -> None:
    """Registered instances (of service NAME), by service and id."""
    from hive import service
    from hive.settings import get_settings

    found = service.list_service_instances(
        get_settings(), service.OPERATOR, name=name, status=status
    )
    if as_json:
        echo_json([view.to_json() for view in found])
        return
    table(
        ["ID", "SERVICE", "STATUS", "URL", "FAILURES", "LAST CHECK", "LAST HEARTBEAT"],
        [
            (
                v.id, v.service, v.status, v.url, str(v.failures),
                v.last_check_output or "-",
                v.last_heartbeat_at.isoformat(timespec="seconds"),
            )
            for v in found
        ],
    )  # fmt: skip


@services.command("show")
@click.argument("instance_id")
@json_option
def services_show(instance_id: str, as_json: bool) -> None:
    """One instance, its checks and metadata."""
    from hive import service
    from hive.settings import get_settings

    view = service.get_service_instance(get_settings(), service.OPERATOR, instance_id)
    if as_json:
        echo_json(view.to_json())
        return
    for key, value in view.to_json().items():
        if key == "meta":
            value = ", ".join(f"{k}={v}" for k, v in sorted(view.meta.items())) or None
        click.echo(f"{key:<20}{'-' if value is None else value}")
