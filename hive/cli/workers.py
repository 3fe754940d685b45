"""``hive workers``: the workers in the registry, as their heartbeats left them."""

from __future__ import annotations

import click

from hive.cli.base import echo_json, group, json_option, table

_STATES = click.Choice(["online", "offline", "lost"])


@group()
def workers() -> None:
    """Workers in the registry (each `hive worker` registers itself and heartbeats)."""


@workers.command("list")
@click.option("--state", type=_STATES, default=None, help="Only workers in this state.")
@json_option
def workers_list(state: str | None, as_json: bool) -> None:
    """Every registered worker: state, last heartbeat, pool, concurrency, queues, versions."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_workers(get_settings(), service.OPERATOR, state=state)
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (
            w.name,
            w.state,
            f"{w.heartbeat_age_s:.0f}s ago",
            str(w.pid),
            f"{w.pool}/{w.concurrency}",
            ",".join(w.queues),
            f"{w.hive_version}/{w.celery_version}",
        )
        for w in views
    ]
    table(["NAME", "STATE", "HEARTBEAT", "PID", "POOL", "QUEUES", "HIVE/CELERY"], rows)
