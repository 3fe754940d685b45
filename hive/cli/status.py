"""``hive status``: the farm on one screen, for an operator."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import click

from hive.cli.base import EXIT_USER_ERROR, FiniteRange, command, echo_json, json_option


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _counts(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "unknown (PostgreSQL could not be read)"
    shown = [f"{name} {n}" for name, n in sorted(counts.items()) if n]
    return ", ".join(shown) or "none"


def render(status: Any) -> list[str]:
    """The screen, as lines: one section a line or a few."""
    lines = []
    down = [name for name, up in status.sources.items() if not up]
    if down:
        lines.append(f"UNREACHABLE  {', '.join(down)}")
    lines.append(f"workers      {_counts(status.workers)}")
    lines.append(f"runs         {_counts(status.runs_in_flight)} in flight")
    lines.append(f"dead letters {_counts(status.dead_letters)}")
    lines.append("queues")
    for q in status.queues:
        depth = "?" if q.depth is None else str(q.depth)
        oldest = f", oldest waiting {q.oldest_s:.0f}s" if q.waiting else ""
        lines.append(f"  {q.name:<24} {depth} queued, {q.waiting} steps waiting{oldest}")
    lines.append("services" + ("" if status.services else "     none registered"))
    for name, by_status in sorted((status.services or {}).items()):
        lines.append(f"  {name:<24} {_counts(by_status)}")
    lines.append("maintenance")
    for m in status.maintenance:
        flag = "  OVERDUE" if m.overdue else ""
        every = f"every {m.interval_s:g}s"
        lines.append(f"  {m.task:<24} last {_age(m.last_success_age_s)} ({every}){flag}")
    return lines


@command()
@json_option
@click.option("--watch", is_flag=True, help="Refresh in place until interrupted.")
@click.option(
    "--interval",
    type=FiniteRange(min=0.5, max=3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
def status(as_json: bool, watch: bool, interval: float) -> None:
    """The farm on one screen: workers, queues, runs in flight, dead letters, services,
    and when each maintenance task last succeeded.

    \b
    Exit status:
      0  every server it reads (PostgreSQL, Redis) answered
      1  one did not: named on the UNREACHABLE line ("sources" in --json), and
         everything the others answered is printed all the same
      2  the command line does not parse
    (Any other error is 1 too, as one line on stderr.)
    With --watch it refreshes until interrupted, and Ctrl-C exits 0.
    """
    from hive import service
    from hive.settings import get_settings

    settings = get_settings()
    interrupted: list[int] = []
    if watch:
        # Ctrl-C is how a watch ends, wherever it lands. Noted, not raised: a
        # KeyboardInterrupt raised inside a finalizer (redis-py's Pipeline.__del__ runs
        # during a refresh) is dropped by Python, and the watch went on for good.
        signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    while not interrupted:
        now = service.farm_status(settings, service.OPERATOR)
        if as_json:
            echo_json(now.to_json())
        else:
            if watch:
                click.clear()
            click.echo("\n".join(render(now)))
        if not watch:
            # A script or a probe reads the exit status: a half-read screen is not "all well".
            if not all(now.sources.values()):
                sys.exit(EXIT_USER_ERROR)
            return
        time.sleep(interval)  # a signal's handler runs, then the sleep goes on (PEP 475)
