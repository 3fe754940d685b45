"""Operator commands of ``hive``: dead letters and maintenance (registered by hive.cli)."""

from __future__ import annotations

import json
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from hive.cli_base import HiveGroup

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """``30m``, ``2h``, ``7d`` (ago) or an ISO-8601 timestamp."""
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = match.groups()
        try:
            return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
        except (OverflowError, ValueError):
            raise click.BadParameter(f"{value!r} is too far back", param_hint="--since") from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO timestamp",
            param_hint="--since",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a run id (a UUID)", param_hint="RUN_ID"
        ) from None


@click.group(cls=HiveGroup)
def dlq() -> None:
    """Dead letters: steps that failed for good."""


@dlq.command("list")
@click.option("--pipeline", default=None)
@click.option("--since", default=None, help="30m, 2h, 7d, or an ISO timestamp.")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
def dlq_list(pipeline: str | None, since: str | None, limit: int) -> None:
    """Dead letters not yet replayed, newest first."""
    from hive.db import dead_letters as letters
    from hive.db.retrying import in_transaction

    cutoff = parse_since(since) if since else None
    rows = in_transaction(
        lambda c: letters.list_open(c, pipeline=pipeline, since=cutoff, limit=limit), retry_s=0
    )
    from hive.cli import table

    table(
        ["RUN", "STEP", "PIPELINE", "ATTEMPTS", "ERROR", "AT"],
        [
            (
                str(r.run_id), r.step_id, r.pipeline, str(r.attempts),
                f"{r.error.get('type')}: {r.error.get('message', '')}"[:60],
                r.created_at.isoformat(timespec="seconds"),
            )
            for r in rows
        ],
    )  # fmt: skip


@dlq.command("show")
@click.argument("run_id")
def dlq_show(run_id: str) -> None:
    """A failed run's dead letters with error, traceback, attempts and pipeline context."""
    from hive.client import Client
    from hive.db import dead_letters as letters
    from hive.db.retrying import in_transaction

    rid = run_uuid(run_id)
    view = Client().get(rid)
    rows = in_transaction(lambda c: letters.for_run(c, rid), retry_s=0)
    doc: dict[str, Any] = {
        "run": {
            "id": view.id, "pipeline": view.pipeline, "version": view.pipeline_version,
            "status": view.status, "tenant": view.tenant, "input": view.input,
        },
        "steps": {s.step_id: s.status for s in view.steps},
        "dead_letters": [
            {
                "step_id": r.step_id, "agent": r.agent, "attempts": r.attempts,
                "error": r.error, "input": r.input,
                "created_at": r.created_at.isoformat(),
                "replayed_at": r.replayed_at.isoformat() if r.replayed_at else None,
            }
            for r in rows
        ],
    }  # fmt: skip
    click.echo(json.dumps(doc, indent=2, default=str))


@dlq.command("replay")
@click.argument("run_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every failed run of --pipeline.")
@click.option("--pipeline", default=None)
@click.option("--input", "input_", default=None, help="New input (JSON or @file) for the step.")
def dlq_replay(
    run_id: str | None, replay_all: bool, pipeline: str | None, input_: str | None
) -> None:
    """Resume a failed run from its failed step (completed steps are not run again)."""
    from hive.cli import read_json
    from hive.db import dead_letters as letters
    from hive.db.retrying import in_transaction
    from hive.tasks.replay import replay

    if replay_all == bool(run_id):
        raise click.UsageError("give either RUN_ID or --all --pipeline P")
    if replay_all:
        if not pipeline:
            raise click.UsageError("--all needs --pipeline")
        if input_:
            raise click.UsageError("--input applies to one run, not to --all")
        targets = in_transaction(lambda c: letters.failed_runs_of(c, pipeline), retry_s=0)
    else:
        targets = [run_uuid(str(run_id))]
    new_input = read_json(input_) if input_ else None
    if new_input is not None and not isinstance(new_input, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--input")
    _check_servers()
    for target in targets:
        sent = replay(target, new_input)
        click.echo(f"{target} replayed: {', '.join(sent) or 'no step ready yet'}")
    if replay_all:
        click.echo(f"{len(targets)} runs replayed", err=True)


@click.group(cls=HiveGroup)
def maintenance() -> None:
    """Run a maintenance task now (beat runs them on a schedule)."""


@maintenance.command("recover")
def maintenance_recover() -> None:
    """Take back stalled steps, send what was never sent, expire overdue runs."""
    from hive.beat.tasks import recover_now

    _check_servers()
    _report(recover_now(), "recover")


@maintenance.command("purge")
def maintenance_purge() -> None:
    """Delete finished runs and events older than HIVE_RETENTION_DAYS."""
    from hive.beat.tasks import purge_now

    _check_servers()
    _report(purge_now(), "purge")


def _check_servers() -> None:
    """Fail now, naming the server, rather than retry for HIVE_DB_RETRY_S holding the lock."""
    from hive.preflight import check_broker, check_database

    check_broker()
    check_database()


def _report(result: dict[str, Any] | None, name: str) -> None:
    if result is None:
        click.echo(f"{name} is already running elsewhere; nothing done", err=True)
        sys.exit(1)
    click.echo(json.dumps(result))
