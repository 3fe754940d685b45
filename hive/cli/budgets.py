"""``hive budgets``: tenants' daily cost budgets and what each spent today; set, clear."""

from __future__ import annotations

import getpass

import click

from hive.cli.base import FiniteRange, as_typed, echo_json, group, json_option, table


@group()
def budgets() -> None:
    """Tenants' daily cost budgets (USD per UTC day), reserved before each LLM step."""


def _usd(amount: float | None) -> str:
    return "-" if amount is None else f"{amount:.6f}"


@budgets.command("list")
@json_option
def budgets_list(as_json: bool) -> None:
    """Every tenant with a daily budget, or spending under one today."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_budgets(get_settings(), service.OPERATOR)
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (
            v.tenant,
            _usd(v.daily_usd),
            v.day,
            _usd(v.spent_usd),
            _usd(v.reserved_usd),
            _usd(v.remaining_usd),
            "yes" if v.warned else "-",
        )
        for v in views
    ]
    table(["TENANT", "DAILY USD", "DAY", "SPENT", "RESERVED", "REMAINING", "WARNED"], rows)


@budgets.command("show")
@click.argument("tenant")
@json_option
def budgets_show(tenant: str, as_json: bool) -> None:
    """One tenant's daily budget and today's figures."""
    from hive import service
    from hive.settings import get_settings

    view = service.get_budget(get_settings(), service.OPERATOR, tenant)
    if as_json:
        echo_json(view.to_json())
        return
    for key, value in view.to_json().items():
        click.echo(f"{key:<15}{'-' if value is None else value}")


@budgets.command("set")
@click.argument("tenant")
@click.option("--daily-usd", type=FiniteRange(min=0, min_open=True), required=True,
              help="What the tenant's steps may spend per UTC day.")  # fmt: skip
def budgets_set(tenant: str, daily_usd: float) -> None:
    """Give TENANT a daily budget (replacing its current one)."""
    from hive import service
    from hive.settings import get_settings

    with as_typed({"daily_usd": "--daily-usd"}):
        view = service.set_budget(
            get_settings(), service.OPERATOR, tenant, daily_usd, by=getpass.getuser()
        )
    click.echo(f"{view.tenant}: {_usd(view.daily_usd)} USD a day ({_usd(view.spent_usd)} spent)")


@budgets.command("clear")
@click.argument("tenant")
def budgets_clear(tenant: str) -> None:
    """Lift TENANT's daily budget."""
    from hive import service
    from hive.settings import get_settings

    if service.clear_budget(get_settings(), service.OPERATOR, tenant, by=getpass.getuser()):
        click.echo(f"{tenant}: daily budget cleared")
    else:
        click.echo(f"{tenant}: had no daily budget")
