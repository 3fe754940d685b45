"""``hive dlq``: dead letters, the steps that failed for good, and their replay."""

from __future__ import annotations

import json
import uuid

import click

from hive.cli.base import (
    RUN_ID,
    FiniteRange,
    as_typed,
    check_servers,
    echo_json,
    group,
    json_option,
    parse_since,
    read_json,
    short,
    table,
)

# The service's (and the Python client's) names for replay's arguments: the options.
_REPLAY_OPTIONS = {"deadline": "--deadline"}


@group()
def dlq() -> None:
    """Dead letters: steps that failed for good."""


@dlq.command("list")
@click.option("--pipeline", default=None)
@click.option("--since", default=None, help="30m, 2h, 7d, or an ISO timestamp.")
@click.option("--limit", type=click.IntRange(1, 10000), default=100, show_default=True)
@json_option
def dlq_list(pipeline: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """Dead letters not yet replayed, newest first."""
    from hive import service
    from hive.settings import get_settings

    cutoff = parse_since(since) if since else None
    letters = service.list_dead_letters(
        get_settings(), service.OPERATOR, pipeline=pipeline, since=cutoff, limit=limit
    )
    if as_json:
        echo_json([letter.to_json() for letter in letters])
        return
    table(
        ["RUN", "STEP", "PIPELINE", "ATTEMPTS", "ERROR", "AT"],
        [
            (
                str(r.run_id), r.step_id, r.pipeline, str(r.attempts),
                f"{r.error.get('type')}: {r.error.get('message', '')}"[:60],
                r.created_at.isoformat(timespec="seconds"),
            )
            for r in letters
        ],
    )  # fmt: skip


@dlq.command("show")
@click.argument("run_id", type=RUN_ID)
@json_option
def dlq_show(run_id: uuid.UUID, as_json: bool) -> None:
    """A failed run's dead letters with error, traceback, attempts and input. With --json:
    {"run": the run of `runs show --json`, "dead_letters": the objects of `dlq list --json`}."""
    from hive import service
    from hive.settings import get_settings

    report = service.dead_letter_report(get_settings(), service.OPERATOR, run_id)
    if as_json:
        echo_json(report.to_json())
        return
    run = report.run
    click.echo(f"run {run.id}  {run.pipeline} v{run.pipeline_version}  {run.status}")
    click.echo(f"  tenant   {run.tenant or '-'}\n  input    {short(json.dumps(run.input), 200)}")
    if not report.dead_letters:
        click.echo("\nno dead letters")
    for letter in report.dead_letters:
        error = letter.error
        replayed = letter.replayed_at.isoformat(timespec="seconds") if letter.replayed_at else "-"
        click.echo(
            f"\nstep {letter.step_id}  agent {letter.agent}  attempts {letter.attempts}  "
            f"at {letter.created_at.isoformat(timespec='seconds')}  replayed {replayed}"
        )
        click.echo(f"  error    {error.get('type')}: {error.get('message', '')}")
        click.echo(f"  input    {short(json.dumps(letter.input), 200)}")
        if error.get("traceback"):
            click.echo("  " + str(error["traceback"]).rstrip().replace("\n", "\n  "))


@dlq.command("replay")
@click.argument("run_id", type=RUN_ID, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every failed run of --pipeline.")
@click.option("--pipeline", default=None)
@click.option("--input", "input_", default=None, help="New input (JSON or @file) for the step.")
@click.option("--deadline", type=FiniteRange(min=0, min_open=True), default=None,
              help="Seconds from now: the replayed run's new deadline (as submit's). Needed "
              "for a run past its deadline.")  # fmt: skip
def dlq_replay(
    run_id: uuid.UUID | None,
    replay_all: bool,
    pipeline: str | None,
    input_: str | None,
    deadline: float | None,
) -> None:
    """Resume a failed run from its failed step (completed steps are not run again). A run
    past its deadline is replayed only with a new --deadline; without one, --all leaves
    such runs out."""
    from hive import service
    from hive.settings import get_settings

    if replay_all == bool(run_id):
        raise click.UsageError("give either RUN_ID or --all --pipeline P")
    if replay_all and not pipeline:
        raise click.UsageError("--all needs --pipeline")
    if replay_all and input_:
        raise click.UsageError("--input applies to one run, not to --all")
    new_input = read_json(input_) if input_ else None
    if new_input is not None and not isinstance(new_input, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--input")
    check_servers()
    settings = get_settings()
    if run_id is not None:
        with as_typed(_REPLAY_OPTIONS):
            sent = service.replay_run(
                settings, service.OPERATOR, run_id, new_input, deadline=deadline
            )
        click.echo(f"{run_id} replayed: {', '.join(sent) or 'no step ready yet'}")
        return
    count = 0
    with as_typed(_REPLAY_OPTIONS):
        # An unknown pipeline is an error (UnknownPipeline, exit 1), not "0 runs replayed".
        replaying = service.replay_failed_runs(
            settings, service.OPERATOR, str(pipeline), deadline=deadline
        )
    for target, sent in replaying:
        click.echo(f"{target} replayed: {', '.join(sent) or 'no step ready yet'}")
        count += 1
    click.echo(f"{count} runs replayed", err=True)
    if replaying.left_past_deadline:
        left = replaying.left_past_deadline
        click.echo(
            f"{left} {'run' if left == 1 else 'runs'} past the deadline left out: replay "
            f"{'it' if left == 1 else 'them'} with --deadline SECONDS (a new deadline)",
            err=True,
        )
