"""``hive worker``, ``hive beat`` and ``hive flower``: the farm's long-running processes."""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hive.cli.base import check_listen, command, default_worker_name, fail

_LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


def _queue_names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    """``--queues a,b``: the names, each non-empty, without blanks, given once (as a queue
    option of a pipeline or agent must be). Blanks around a comma are allowed."""
    if value is None:
        return []
    names = [name.strip() for name in value.split(",")]
    if not any(names):
        raise click.BadParameter("no queue names given", ctx, param)
    if not all(names):
        raise click.BadParameter(f"{value!r} has an empty queue name (see its commas)", ctx, param)
    seen: set[str] = set()
    for name in names:
        if any(char.isspace() for char in name):
            raise click.BadParameter(f"{name!r} is not a queue name (no blanks in one)", ctx, param)
        if name in seen:
            raise click.BadParameter(f"{name!r} is given twice", ctx, param)
        seen.add(name)
    return names


@command()
@click.option(
    "--queues",
    "-Q",
    callback=_queue_names,
    help="Comma-separated queues (default: every agent's queue, and hive.maintenance). "
    "A queue no pipeline routes steps to is taken all the same, with a warning.",
)
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None)
@click.option("--pool", "-P", type=click.Choice(["prefork", "threads", "solo"]), default="prefork")
@click.option("--hostname", "-n", default=None, help="Node name (default hive@<host>).")
@click.option("--loglevel", "-l", type=_LOG_LEVELS, default=None)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics here, for every pool process; 0 turns it off "
    "[default: HIVE_METRICS_PORT, 9808].",
)
@click.option(
    "--task-events/--no-task-events",
    default=True,
    show_default=True,
    help="Publish an event as each step is received, starts and ends: Flower's live view "
    "of tasks. Off, this worker's steps are missing from it, and each step costs less CPU.",
)
def worker(
    queues: list[str],
    concurrency: int | None,
    pool: str,
    hostname: str | None,
    loglevel: str | None,
    metrics_port: int | None,
    task_events: bool,
) -> None:
    """Start a Celery worker that runs agent steps."""
    # First: prometheus-client must see its directory before anything imports it. The port
    # is bound only once the configuration is known good: a mistake in a file is the error
    # to report, not a port that another worker holds.
    serve_metrics = _metrics_server(metrics_port)
    from hive import keys
    from hive.agents.registry import default_registry
    from hive.logs import configure_logging
    from hive.preflight import (
        check_injection_rules,
        check_limits_file,
        check_price_table,
        check_visibility_timeout,
        wait_for_services,
        warn_unrouted_queues,
    )
    from hive.settings import get_settings

    configure_logging(loglevel)
    catalog = check_visibility_timeout()
    if queues and catalog is not None:
        warn_unrouted_queues(queues, catalog)
    check_price_table()
    check_injection_rules()
    check_limits_file()
    serve_metrics()
    wait_for_services()
    names = queues or _all_queues(default_registry(), keys)
    argv = [
        "worker",
        "--queues", ",".join(names),
        "--pool", pool,
        "--hostname", hostname or default_worker_name(),
        "--loglevel", (loglevel or get_settings().logs.level).upper(),
        "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip
    if task_events:
        argv.append("--task-events")
    else:
        # Not only the flag: Hive's configuration turns them on for every worker.
        from hive.tasks.app import app

        app.conf.worker_send_task_events = False
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    run_celery(argv)


def _metrics_server(port: int | None) -> Callable[[], None]:
    """Prepare this worker's metrics directory now; the returned function serves it."""
    from hive.exposition import prepare_multiprocess_dir, serve_worker_metrics
    from hive.settings import get_settings

    settings = get_settings().metrics
    port = settings.port if port is None else port
    if not port:
        return lambda: None
    directory = prepare_multiprocess_dir()
    return lambda: serve_worker_metrics(settings.address, port, directory)


def run_celery(argv: list[str]) -> None:
    """Run ``celery <argv>`` on Hive's app and exit with its status.

    Not ``app.start`` / ``app.worker_main``: they drop the status click returns, so a worker
    that stops on "Unrecoverable error" would exit 0 and a supervisor's restart-on-failure
    would never fire.
    """
    from celery.bin.celery import celery

    from hive.settings import get_settings

    # Celery's start-up banner is printed, not logged: with JSON logs it would be thirty
    # lines of ASCII art among the records a log shipper parses.
    quiet = ["--quiet"] if get_settings().logs.format == "json" else []
    status = celery.main(
        args=["--app", "hive.tasks.app:app", *quiet, *argv], prog_name="hive", standalone_mode=False
    )
    if isinstance(status, int) and status:
        sys.exit(status)


def _all_queues(registry: Any, keys: Any) -> list[str]:
    names = {keys.DEFAULT_QUEUE, keys.MAINTENANCE_QUEUE}
    names.update(agent.options.queue for agent in registry.all())
    return sorted(names)


@command()
@click.option("--loglevel", "-l", type=_LOG_LEVELS, default=None)
@click.option(
    "--schedule",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File where beat keeps the last run time of each entry "
    "[default: HIVE_DATA_DIR/celerybeat-schedule].",
)
def beat(loglevel: str | None, schedule: Path | None) -> None:
    """Start the scheduler of maintenance tasks."""
    from hive.beat.schedule import beat_schedule
    from hive.logs import configure_logging
    from hive.preflight import wait_for_services
    from hive.settings import get_settings
    from hive.tasks.app import app

    where = "--schedule" if schedule else "HIVE_DATA_DIR"
    schedule = schedule or get_settings().storage.data_dir / "celerybeat-schedule"
    _make_dir(schedule.parent, where)
    configure_logging(loglevel)
    wait_for_services()
    level = (loglevel or get_settings().logs.level).upper()
    app.conf.beat_schedule = beat_schedule(get_settings())
    run_celery(["beat", "--loglevel", level, "--schedule", str(schedule)])


def _make_dir(path: Path, where: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{where}: cannot create {path}: {exc.strerror}")


@command()
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option(
    "--insecure", is_flag=True, help="Run without authentication (loopback addresses only)."
)
@click.option(
    "--allow-control",
    is_flag=True,
    help="Let Flower's users shut down workers, revoke and send tasks (default: read-only).",
)
@click.option(
    "--persistent",
    is_flag=True,
    help="Keep Flower's task history across restarts, in HIVE_DATA_DIR/flower/.",
)
def flower(port: int, address: str, insecure: bool, allow_control: bool, persistent: bool) -> None:
    """Start Flower for this farm, read-only (basic auth from HIVE_FLOWER_BASIC_AUTH)."""
    try:
        import flower as _flower  # noqa: F401
    except ImportError:
        fail("Flower is not installed: pip install 'hive[flower]'")
    from hive.settings import get_settings

    settings = get_settings()
    auth = settings.flower.basic_auth
    if not auth and not insecure:
        fail("Flower needs HIVE_FLOWER_BASIC_AUTH=user:password (or --insecure for local use)")
    if insecure and not auth and not _is_loopback(address):
        fail(f"--insecure: refusing to serve Flower without authentication on {address}")
    check_listen(address, port, "--address", "--port")
    # --conf: without it Flower executes a flowerconfig.py from the working directory.
    argv = ["flower", f"--port={port}", f"--address={address}", f"--conf={os.devnull}"]
    argv.append(f"--read_only={not allow_control}")
    if persistent:
        state = settings.storage.data_dir / "flower"
        _make_dir(state, "HIVE_DATA_DIR")
        # Saved every minute as well as on a clean stop, so a killed Flower loses little.
        argv += ["--persistent=True", f"--db={state / 'flower.db'}", "--state_save_interval=60000"]
    if auth:
        # Given to Flower through its own variable so the password never shows in `ps`.
        os.environ["FLOWER_BASIC_AUTH"] = auth.get_secret_value()
    run_celery(argv)


@command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve /metrics here [default: HIVE_EXPORTER_PORT, 9809].",
)
@click.option("--loglevel", "-l", type=_LOG_LEVELS, default=None)
def exporter(port: int | None, loglevel: str | None) -> None:
    """Serve the farm-wide Prometheus figures, read from PostgreSQL and Redis on each scrape."""
    from hive.exporter import farm_registry
    from hive.exposition import serve
    from hive.logs import configure_logging
    from hive.settings import get_settings

    configure_logging(loglevel)
    settings = get_settings()
    port = port or settings.metrics.exporter_port
    address = settings.metrics.address
    serve(farm_registry(settings), address, port, "HIVE_EXPORTER_PORT (or --port)")
    # Not a log record: the line a supervisor (or a test) waits for, whatever the level.
    click.echo(f"hive exporter: serving /metrics on {address}:{port}", err=True)
    while True:  # the server runs in a daemon thread; SIGTERM ends the process
        time.sleep(3600)


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name, or "" for every interface
