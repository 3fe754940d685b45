"""``hive submit`` and ``hive runs``: start runs and look at them."""

from __future__ import annotations

import json
import sys
import uuid

import click

from hive.cli.base import (
    EXIT_INTERRUPTED,
    RUN_ID,
    FiniteRange,
    as_typed,
    command,
    echo_json,
    fail,
    group,
    json_option,
    read_json,
    short,
    table,
)
from hive.statuses import FINAL_RUN_STATUSES, RunStatus

_RUN_STATUSES = [status.value for status in RunStatus]
# The service's names for submit's arguments (the client's and the API's): the options.
_SUBMIT_OPTIONS = {
    "tenant": "--tenant",
    "priority": "--priority",
    "idempotency_key": "--idempotency-key",
    "deadline": "--deadline",
    "budget_usd": "--budget-usd",
}


@command()
@click.argument("pipeline")
@click.option("--input", "input_", required=True, help="JSON, or @path to a JSON file.")
@click.option("--tenant", default=None)
@click.option(
    "--priority",
    type=click.Choice(["low", "normal", "high", "critical"]),
    default="normal",
    show_default=True,
)
@click.option("--idempotency-key", default=None, help="The same key gives back the same run.")
@click.option("--deadline", type=FiniteRange(min=0, min_open=True), default=None,
              help="Seconds; a run not finished by then ends expired.")  # fmt: skip
@click.option("--budget-usd", type=FiniteRange(min=0, min_open=True), default=None,
              help="The run's cost budget in USD, in place of its pipeline's.")  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait and print the output; exit 1 if the run fails.")
@click.option("--timeout", type=FiniteRange(min=0, min_open=True), default=None,
              help="With --wait: seconds to wait.")  # fmt: skip
def submit(
    pipeline: str,
    input_: str,
    tenant: str | None,
    priority: str,
    idempotency_key: str | None,
    deadline: float | None,
    budget_usd: float | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Submit a run; prints its id."""
    from hive import service
    from hive.errors import RunFailed
    from hive.settings import get_settings

    if timeout is not None and not wait:
        raise click.UsageError("--timeout only applies with --wait")
    data = read_json(input_)
    settings, caller = get_settings(), service.OPERATOR
    # Mistakes first, then the servers: a run is stored only when its steps can be sent.
    service.validate_input(settings, caller, pipeline, data)
    service.check_broker(settings)
    with as_typed(_SUBMIT_OPTIONS):
        submitted = service.submit(
            settings, caller, pipeline, data, tenant=tenant, priority=priority,
            idempotency_key=idempotency_key, deadline=deadline, budget_usd=budget_usd,
        )  # fmt: skip
    try:
        # From the moment the id is out: a Ctrl-C is then about the run it names.
        click.echo(str(submitted.run_id))
        if not wait:
            return
        output = service.wait_for_run(settings, caller, submitted.run_id, timeout=timeout)
    except KeyboardInterrupt:
        # Not click's bare "Aborted!", which reads as if the run had been stopped.
        run_id = submitted.run_id
        click.echo(f"stopped waiting; run {run_id} goes on (`hive runs cancel {run_id}` stops it)",
                   err=True)  # fmt: skip
        sys.exit(EXIT_INTERRUPTED)
    except RunFailed as exc:
        click.echo(json.dumps({"status": exc.status, "error": exc.error}, indent=2))
        fail(str(exc))
    except TimeoutError as exc:
        fail(str(exc))
    click.echo(json.dumps(output, indent=2))


@group()
def runs() -> None:
    """Inspect runs."""


@runs.command("show")
@click.argument("run_id", type=RUN_ID)
@json_option
def runs_show(run_id: uuid.UUID, as_json: bool) -> None:
    """The run and every step: status, attempts, timestamps, output, error."""
    from hive import service
    from hive.settings import get_settings

    data = service.get_run(get_settings(), service.OPERATOR, run_id).to_json()
    if as_json:
        echo_json(data)
        return
    click.echo(f"run {data['id']}  {data['pipeline']} v{data['pipeline_version']}")
    click.echo(
        f"  status   {data['status']}   priority {data['priority']}   "
        f"tenant {data['tenant'] or '-'}"
    )
    click.echo(
        f"  created  {data['created_at']}\n  started  {data['started_at'] or '-'}\n"
        f"  finished {data['finished_at'] or '-'}\n  trace    {data['trace_id'] or '-'}"
    )
    if data["budget_usd"] is not None:
        spent, budget = data["budget_spent_usd"], data["budget_usd"]
        click.echo(f"  budget   {spent:.6f} of {budget:.6f} USD spent")
    if data["error"]:
        click.echo(f"  error    {json.dumps(data['error'])}")
    if data["output"] is not None:
        click.echo(f"  output   {json.dumps(data['output'])[:2000]}")
    rows = [
        (
            s["step_id"], s["agent"], s["status"], str(s["attempts"]),
            s["started_at"] or "-", s["finished_at"] or "-",
            short(s["error"]["type"] + ": " + s["error"]["message"]) if s["error"]
            else short(json.dumps(s["output"])) if s["output"] is not None else "",
        )
        for s in data["steps"] or []
    ]  # fmt: skip
    click.echo("")
    table(["STEP", "AGENT", "STATUS", "ATTEMPTS", "STARTED", "FINISHED", "OUTPUT/ERROR"], rows)


@runs.command("list")
@click.option("--status", type=click.Choice(_RUN_STATUSES, case_sensitive=False), default=None)
@click.option("--pipeline", default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
def runs_list(status: str | None, pipeline: str | None, limit: int, as_json: bool) -> None:
    """Recent runs, newest first. With --json, the run objects of `runs show --json` with
    "steps": null (a listing reads no step)."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_runs(
        get_settings(),
        service.OPERATOR,
        status=status and status.lower(),
        pipeline=pipeline,
        limit=limit,
    )
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (v.id, v.pipeline, v.status, v.priority, v.created_at.isoformat(timespec="seconds"))
        for v in views
    ]
    table(["RUN", "PIPELINE", "STATUS", "PRIORITY", "CREATED"], rows)


@runs.command("cancel")
@click.argument("run_id", type=RUN_ID)
def runs_cancel(run_id: uuid.UUID) -> None:
    """Cancel a run: no new step starts, running steps are revoked."""
    from hive import service
    from hive.settings import get_settings

    settings = get_settings()
    if service.cancel_run(settings, service.OPERATOR, run_id):
        click.echo(f"{run_id} cancelled")
    else:
        state = service.get_run_state(settings, service.OPERATOR, run_id)
        if state.status in FINAL_RUN_STATUSES:
            fail(f"run {run_id} had already ended ({state.status})")
        fail(f"run {run_id} has no step left to stop: it is closing with its steps' outcome")
