"""``hive approvals``: the steps held for a person's decision, and deciding them."""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Any

import click

from hive.cli.base import RUN_ID, as_typed, echo_json, group, json_option, read_json, short, table

_BY_HELP = "Who decides, for the audit trail (default: your user name)."


@group()
def approvals() -> None:
    """Steps awaiting a person's approval."""


@approvals.command("list")
@click.option("--pipeline", default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@json_option
def approvals_list(pipeline: str | None, limit: int, as_json: bool) -> None:
    """Pending approvals, oldest first. Ids, pipeline and reason only: the input (which may
    hold personal data) is in `approvals show`. With --json, the objects of `approvals show
    --json` with "input" and "history" null."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_approvals(get_settings(), service.OPERATOR, pipeline=pipeline, limit=limit)
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    table(
        ["RUN", "STEP", "PIPELINE", "TENANT", "SINCE", "TIMES OUT", "REASON"],
        [
            (
                str(v.run_id), v.step_id, v.pipeline, v.tenant or "-",
                v.requested_at.isoformat(timespec="seconds"),
                f"{v.timeout_action} at {v.timeout_at.isoformat(timespec='seconds')}"
                if v.timeout_at else "-",
                short(v.reason, 50),
            )
            for v in views
        ],
    )  # fmt: skip


@approvals.command("show")
@click.argument("run_id", type=RUN_ID)
@click.argument("step_id")
@json_option
def approvals_show(run_id: uuid.UUID, step_id: str, as_json: bool) -> None:
    """One step's approval: why it waits, the input it would run with, and every request
    and decision with who and when."""
    from hive import service
    from hive.settings import get_settings

    view = service.get_approval(get_settings(), service.OPERATOR, run_id, step_id)
    if as_json:
        echo_json(view.to_json())
        return
    click.echo(f"run {view.run_id}  step {view.step_id}  {view.pipeline}  agent {view.agent}")
    click.echo(f"  status    {view.status}   tenant {view.tenant or '-'}")
    click.echo(f"  reason    {view.reason}  ({view.source})")
    click.echo(f"  since     {view.requested_at.isoformat(timespec='seconds')}")
    if view.timeout_at:
        when = view.timeout_at.isoformat(timespec="seconds")
        click.echo(f"  times out {when}, then: {view.timeout_action}")
    if view.decided_at:
        when = view.decided_at.isoformat(timespec="seconds")
        edited = " (input edited)" if view.input_edited else ""
        click.echo(f"  decided   {view.status} by {view.decided_by} at {when}{edited}")
        if view.decision_reason:
            click.echo(f"  because   {view.decision_reason}")
    click.echo(f"  input     {json.dumps(view.input, indent=2, ensure_ascii=False)}")
    click.echo("")
    table(
        ["AT", "EVENT", "BY", "DETAIL"],
        [
            (e.at.isoformat(timespec="seconds"), e.kind.removeprefix("approval_"),
             str(e.detail.get("by", "-")), short(_detail(e.detail), 70))
            for e in view.history or []
        ],
    )  # fmt: skip


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if k != "by" and v is not None)


@approvals.command("approve")
@click.argument("run_id", type=RUN_ID)
@click.argument("step_id")
@click.option("--input", "input_", default=None,
              help="The input the step runs with instead (JSON or @file), checked against "
              "its agent's input model.")  # fmt: skip
@click.option("--by", default=None, help=_BY_HELP)
def approvals_approve(run_id: uuid.UUID, step_id: str, input_: str | None, by: str | None) -> None:
    """Let a held step run."""
    from hive import service
    from hive.settings import get_settings

    new_input = read_json(input_) if input_ is not None else None
    if new_input is not None and not isinstance(new_input, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--input")
    with as_typed({"by": "--by", "the new input": "--input"}):
        view = service.approve(
            get_settings(), service.OPERATOR, run_id, step_id, by=by or getpass.getuser(),
            new_input=new_input,
        )  # fmt: skip
    click.echo(f"{run_id} {step_id} approved by {view.decided_by}")


@approvals.command("reject")
@click.argument("run_id", type=RUN_ID)
@click.argument("step_id")
@click.option("--reason", required=True, help="Why, for the run's error and the audit trail.")
@click.option("--by", default=None, help=_BY_HELP)
def approvals_reject(run_id: uuid.UUID, step_id: str, reason: str, by: str | None) -> None:
    """Fail a held step for good (a dead letter); its run fails as on any permanent failure."""
    from hive import service
    from hive.settings import get_settings

    with as_typed({"by": "--by", "reason": "--reason"}):
        view = service.reject(
            get_settings(), service.OPERATOR, run_id, step_id, reason=reason,
            by=by or getpass.getuser(),
        )  # fmt: skip
    click.echo(f"{run_id} {step_id} rejected by {view.decided_by}")
