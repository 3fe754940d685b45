"""``hive breakers``: the fleet's circuit breakers, their states and policies; open, close."""

from __future__ import annotations

from typing import Any

import click

from hive.cli.base import DurationType, echo_json, group, json_option, table

# service.breakers.OPEN_FOR_MAX_S (tests/unit/test_cli_durations.py holds them equal; the
# service layer is imported only when a command runs).
OPEN_FOR_MAX_S = 30 * 86400.0


@group()
def breakers() -> None:
    """Circuit breakers on the services and LLM providers agents call (HIVE_LIMITS_FILE)."""


def _left(view: Any) -> str:
    if view.state != "open":
        return "-"
    return "until closed" if view.open_for_s is None else f"{view.open_for_s:.0f}s"


@breakers.command("list")
@json_option
def breakers_list(as_json: bool) -> None:
    """Every breaker the limits file declares or Redis holds, with its state."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_breakers(get_settings(), service.OPERATOR)
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (
            v.name,
            v.state,
            _left(v),
            str(v.failures),
            f"{v.window_failures}/{v.window_calls}",
            "-" if v.policy is None else f"{v.policy.failures} / {v.policy.cooldown_s:g}s",
            "-" if v.policy is None else v.policy.on_open,
            v.by or "-",
        )
        for v in views
    ]
    table(
        ["NAME", "STATE", "OPEN FOR", "FAILURES", "WINDOW", "OPENS AT / FOR", "ON OPEN", "BY"],
        rows,
    )


@breakers.command("show")
@click.argument("name")
@json_option
def breakers_show(name: str, as_json: bool) -> None:
    """One breaker (NAME: service:NAME, provider:NAME, or a service's bare NAME)."""
    from hive import service
    from hive.settings import get_settings

    view = service.get_breaker(get_settings(), service.OPERATOR, name)
    if as_json:
        echo_json(view.to_json())
        return
    for key, value in view.to_json().items():
        if key == "policy":
            value = ", ".join(f"{k}={v}" for k, v in (value or {}).items()) or None
        click.echo(f"{key:<16}{'-' if value is None else value}")


@breakers.command("open")
@click.argument("name")
@click.option(
    "--for", "for_s", type=DurationType(OPEN_FOR_MAX_S), default=None,
    help="Open this long (30s, 10m, 2h; at most 30d); then one probe call decides. "
    "Default: until `hive breakers close`.",
)  # fmt: skip
def breakers_open(name: str, for_s: float | None) -> None:
    """Open a breaker: calls through it wait (or fail, by its policy)."""
    from hive import service
    from hive.settings import get_settings

    view = service.open_breaker(get_settings(), service.OPERATOR, name, for_s=for_s)
    click.echo(f"{view.name} {view.state} ({_left(view)})")


@breakers.command("close")
@click.argument("name")
def breakers_close(name: str) -> None:
    """Close a breaker: calls go through again."""
    from hive import service
    from hive.settings import get_settings

    view = service.close_breaker(get_settings(), service.OPERATOR, name)
    click.echo(f"{view.name} {view.state}")
