"""``hive dlq``: dead letters, the steps that failed for good, and their replay."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click

from hive.cli.base import RUN_ID, check_servers, group, parse_since, read_json, table


@group()
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
@click.argument("run_id", type=RUN_ID)
def dlq_show(run_id: uuid.UUID) -> None:
    """A failed run's dead letters with error, traceback, attempts and pipeline context."""
    from hive.client import Client
    from hive.db import dead_letters as letters
    from hive.db.retrying import in_transaction

    view = Client().get(run_id)
    rows = in_transaction(lambda c: letters.for_run(c, run_id), retry_s=0)
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
@click.argument("run_id", type=RUN_ID, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every failed run of --pipeline.")
@click.option("--pipeline", default=None)
@click.option("--input", "input_", default=None, help="New input (JSON or @file) for the step.")
def dlq_replay(
    run_id: uuid.UUID | None, replay_all: bool, pipeline: str | None, input_: str | None
) -> None:
    """Resume a failed run from its failed step (completed steps are not run again)."""
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
        assert run_id is not None
        targets = [run_id]
    new_input = read_json(input_) if input_ else None
    if new_input is not None and not isinstance(new_input, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--input")
    check_servers()
    for target in targets:
        sent = replay(target, new_input)
        click.echo(f"{target} replayed: {', '.join(sent) or 'no step ready yet'}")
    if replay_all:
        click.echo(f"{len(targets)} runs replayed", err=True)
