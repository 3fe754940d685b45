"""``hive usage``: what the runs used and cost, per tenant."""

from __future__ import annotations

import click

from hive.cli.base import as_typed, command, echo_json, json_option, parse_since, table


@command()
@click.option("--tenant", default=None, help="Only this tenant's runs.")
@click.option("--since", default=None, help="Runs created since: 30m, 2h, 7d, or an ISO time.")
@json_option
def usage(tenant: str | None, since: str | None, as_json: bool) -> None:
    """Tokens, calls and cost of the runs, per tenant (the price table's currency)."""
    from hive import service
    from hive.settings import get_settings

    after = parse_since(since) if since is not None else None
    with as_typed({"tenant": "--tenant", "since": "--since"}):
        views = service.usage_by_tenant(
            get_settings(), service.OPERATOR, tenant=tenant, since=after
        )
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (
            "-" if v.tenant is None else v.tenant,
            str(v.runs),
            _count(v.usage.get("prompt_tokens")),
            _count(v.usage.get("completion_tokens")),
            _count(v.usage.get("llm_calls")),
            "-" if v.cost is None else f"{v.cost:.6f}",
        )
        for v in views
    ]
    table(["TENANT", "RUNS", "PROMPT TOKENS", "COMPLETION TOKENS", "LLM CALLS", "COST"], rows)


def _count(value: float | int | None) -> str:
    return "0" if value is None else f"{value:g}"
