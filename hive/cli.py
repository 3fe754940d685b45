"""The ``hive`` command."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from hive.cli_base import EXIT_USER_ERROR, HiveGroup, exit_on_sigterm
from hive.cli_base import fail as _fail
from hive.statuses import RunStatus

_LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)
_RUN_STATUSES = [status.value for status in RunStatus]


@click.group(cls=HiveGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hive")
def main() -> None:
    """Hive: run pipelines of agent steps on Celery workers, recorded in PostgreSQL."""
    exit_on_sigterm()


# --------------------------------------------------------------------------- processes


@main.command()
@click.option("--queues", "-Q", help="Comma-separated queues (default: every agent's queue).")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None)
@click.option("--pool", "-P", type=click.Choice(["prefork", "threads", "solo"]), default="prefork")
@click.option("--hostname", "-n", default=None, help="Node name (default hive@<host>).")
@click.option("--loglevel", "-l", type=_LOG_LEVELS, default=None)
def worker(
    queues: str | None,
    concurrency: int | None,
    pool: str,
    hostname: str | None,
    loglevel: str | None,
) -> None:
    """Start a Celery worker that runs agent steps."""
    from hive import keys
    from hive.agents.registry import default_registry
    from hive.logs import configure_logging
    from hive.preflight import check_visibility_timeout, wait_for_services
    from hive.settings import get_settings
    from hive.tasks.app import app

    names = [q.strip() for q in queues.split(",") if q.strip()] if queues is not None else []
    if queues is not None and not names:
        raise click.BadParameter("no queue names given", param_hint="--queues")
    configure_logging(loglevel)
    check_visibility_timeout()
    wait_for_services()
    names = names or _all_queues(default_registry(), keys)
    argv = [
        "worker",
        "--queues", ",".join(names),
        "--pool", pool,
        "--hostname", hostname or f"hive@{socket.gethostname()}",
        "--loglevel", (loglevel or get_settings().logs.level).upper(),
        "--without-gossip",
        "--without-mingle",
        "--task-events",
    ]  # fmt: skip
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    app.worker_main(argv)


def _all_queues(registry: Any, keys: Any) -> list[str]:
    names = {keys.DEFAULT_QUEUE, keys.MAINTENANCE_QUEUE}
    names.update(agent.options.queue for agent in registry.all())
    return sorted(names)


@main.command()
@click.option("--loglevel", "-l", type=_LOG_LEVELS, default=None)
@click.option(
    "--schedule",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".hive/celerybeat-schedule"),
    show_default=True,
    help="File where beat keeps the last run time of each entry.",
)
def beat(loglevel: str | None, schedule: Path) -> None:
    """Start the scheduler of maintenance tasks."""
    from hive.logs import configure_logging
    from hive.preflight import wait_for_services
    from hive.settings import get_settings
    from hive.tasks.app import app

    try:
        schedule.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"--schedule: cannot create {schedule.parent}: {exc.strerror}")
    configure_logging(loglevel)
    wait_for_services()
    level = (loglevel or get_settings().logs.level).upper()
    app.start(["beat", "--loglevel", level, "--schedule", str(schedule)])


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--insecure", is_flag=True, help="Run without authentication (local use only).")
def flower(port: int, address: str, insecure: bool) -> None:
    """Start Flower for this farm (basic auth from HIVE_FLOWER_BASIC_AUTH)."""
    from hive.settings import get_settings
    from hive.tasks.app import app

    auth = get_settings().flower.basic_auth
    if not auth and not insecure:
        _fail("Flower needs HIVE_FLOWER_BASIC_AUTH=user:password (or --insecure for local use)")
    argv = ["flower", f"--port={port}", f"--address={address}"]
    if auth:
        # Given to Flower through its own variable so the password never shows in `ps`.
        os.environ["FLOWER_BASIC_AUTH"] = auth.get_secret_value()
    app.start(argv)


# --------------------------------------------------------------------------- admin


@main.group()
def db() -> None:
    """Database administration."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations (safe to run again)."""
    from hive.db.migrate import upgrade

    upgrade()
    click.echo("database is at the newest schema")


@main.group()
def agents() -> None:
    """Installed agents."""


@agents.command("list")
def agents_list() -> None:
    """Name, version, queue and input fields of every agent."""
    from hive.agents.registry import default_registry

    rows = [
        (a.name, a.version, a.options.queue, ", ".join(a.input_model.model_fields))
        for a in default_registry().all()
    ]
    table(["NAME", "VERSION", "QUEUE", "INPUT"], rows)


@main.group()
def pipelines() -> None:
    """Pipelines in HIVE_PIPELINES_DIR."""


@pipelines.command("list")
def pipelines_list() -> None:
    """Every pipeline with its version and steps."""
    from hive.agents.registry import default_registry
    from hive.pipelines import load_pipelines
    from hive.preflight import check_pipelines_dir

    found = load_pipelines(check_pipelines_dir(), default_registry())
    rows = [
        (p.name, str(p.version), str(len(p.steps)), p.source)
        for p in sorted(found.values(), key=lambda p: p.name)
    ]
    table(["NAME", "VERSION", "STEPS", "FILE"], rows)


@pipelines.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def pipelines_validate(paths: tuple[Path, ...]) -> None:
    """Check pipeline files (default: HIVE_PIPELINES_DIR); exit 1 listing every problem."""
    from hive.agents.registry import default_registry
    from hive.pipelines import validate_paths
    from hive.pipelines.loader import SUFFIXES
    from hive.preflight import check_pipelines_dir

    targets = list(paths) or [check_pipelines_dir()]
    # An empty directory is not "ok": the path is most likely wrong.
    problems = [
        f"{path}: no pipeline files ({', '.join('*' + s for s in SUFFIXES)}) in this directory"
        for path in targets
        if path.is_dir() and not any(p.suffix in SUFFIXES for p in path.iterdir())
    ]
    problems += validate_paths(targets, default_registry())
    if problems:
        for line in problems:
            click.echo(line, err=True)
        sys.exit(EXIT_USER_ERROR)
    click.echo("ok")


# --------------------------------------------------------------------------- runs


@main.command()
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
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds; a run not finished by then ends expired.")  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait and print the output; exit 1 if the run fails.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --wait: seconds to wait.")  # fmt: skip
def submit(
    pipeline: str,
    input_: str,
    tenant: str | None,
    priority: str,
    idempotency_key: str | None,
    deadline: float | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Submit a run; prints its id."""
    from hive.client import Client
    from hive.errors import RunFailed
    from hive.pipelines import validate_run_input
    from hive.preflight import check_broker, check_pipelines_dir

    if timeout is not None and not wait:
        raise click.UsageError("--timeout only applies with --wait")
    data = read_json(input_)
    check_pipelines_dir()
    client = Client()
    # Mistakes first, then the servers: a run is stored only when its steps can be sent.
    validate_run_input(client.pipeline(pipeline), data)
    check_broker()
    run = client.submit(
        pipeline, data, tenant=tenant, priority=priority,
        idempotency_key=idempotency_key, deadline=deadline,
    )  # fmt: skip
    click.echo(str(run.id))
    if not wait:
        return
    try:
        output = run.wait(timeout=timeout)
    except RunFailed as exc:
        click.echo(json.dumps({"status": exc.status, "error": exc.error}, indent=2))
        _fail(str(exc))
    except TimeoutError as exc:
        _fail(str(exc))
    click.echo(json.dumps(output, indent=2))


def read_json(value: str) -> Any:
    where = "--input"
    if value.startswith("@"):
        if not value[1:]:
            _fail("--input: give a file name after @ (--input @run.json)")
        path = Path(value[1:])
        where = str(path)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            _fail(f"--input: cannot read {path}: {exc.strerror}")
        except UnicodeDecodeError:
            _fail(f"--input: cannot read {path}: not UTF-8 text")
    try:
        return json.loads(value, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        _fail(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:
        _fail(f"{where}: not valid JSON: {exc}")


def _no_constant(name: str) -> float:
    # Python's json reads NaN and Infinity; JSON (and PostgreSQL's jsonb) has no such values.
    raise ValueError(f"{name} is not a JSON value")


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        _fail(f"{value!r} is not a run id (a UUID)")


@main.group()
def runs() -> None:
    """Inspect runs."""


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def runs_show(run_id: str, as_json: bool) -> None:
    """The run and every step: status, attempts, timestamps, output, error."""
    from hive.client import Client

    view = Client().get(_run_id(run_id))
    if as_json:
        click.echo(json.dumps(view.to_json(), indent=2, default=str))
        return
    data = view.to_json()
    click.echo(f"run {data['id']}  {data['pipeline']} v{data['pipeline_version']}")
    click.echo(
        f"  status   {data['status']}   priority {data['priority']}   "
        f"tenant {data['tenant'] or '-'}"
    )
    click.echo(
        f"  created  {data['created_at']}\n  started  {data['started_at'] or '-'}\n"
        f"  finished {data['finished_at'] or '-'}"
    )
    if data["error"]:
        click.echo(f"  error    {json.dumps(data['error'])}")
    if data["output"] is not None:
        click.echo(f"  output   {json.dumps(data['output'])[:2000]}")
    rows = [
        (
            s["step_id"], s["agent"], s["status"], str(s["attempts"]),
            s["started_at"] or "-", s["finished_at"] or "-",
            _short(s["error"]["type"] + ": " + s["error"]["message"]) if s["error"]
            else _short(json.dumps(s["output"])) if s["output"] is not None else "",
        )
        for s in data["steps"]
    ]  # fmt: skip
    click.echo("")
    table(["STEP", "AGENT", "STATUS", "ATTEMPTS", "STARTED", "FINISHED", "OUTPUT/ERROR"], rows)


@runs.command("list")
@click.option("--status", type=click.Choice(_RUN_STATUSES, case_sensitive=False), default=None)
@click.option("--pipeline", default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
def runs_list(status: str | None, pipeline: str | None, limit: int) -> None:
    """Recent runs, newest first."""
    from hive.client import Client

    views = Client().list(status=status and status.lower(), pipeline=pipeline, limit=limit)
    rows = [
        (v.id, v.pipeline, v.status, v.priority, v.created_at.isoformat(timespec="seconds"))
        for v in views
    ]
    table(["RUN", "PIPELINE", "STATUS", "PRIORITY", "CREATED"], rows)


@runs.command("cancel")
@click.argument("run_id")
def runs_cancel(run_id: str) -> None:
    """Cancel a run: no new step starts, running steps are revoked."""
    from hive.client import Client

    rid = _run_id(run_id)
    if Client().cancel(rid):
        click.echo(f"{rid} cancelled")
    else:
        _fail(f"run {rid} had already ended ({Client().get(rid).status})")


def _register_ops() -> None:
    from hive.cli_ops import dlq, maintenance

    main.add_command(dlq)
    main.add_command(maintenance)


_register_ops()


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: list[tuple[str, ...]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [tuple(headers), *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
