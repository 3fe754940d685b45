"""``hive worker``, ``hive beat`` and ``hive flower``: the farm's long-running processes."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click

from hive.cli.base import command, fail

_LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


@command()
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
        "--loglevel", (loglevel or get_settings().log_level).upper(),
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


@command()
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
    from hive.beat.schedule import beat_schedule
    from hive.logs import configure_logging
    from hive.preflight import wait_for_services
    from hive.settings import get_settings
    from hive.tasks.app import app

    try:
        schedule.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--schedule: cannot create {schedule.parent}: {exc.strerror}")
    configure_logging(loglevel)
    wait_for_services()
    level = (loglevel or get_settings().log_level).upper()
    app.conf.beat_schedule = beat_schedule(get_settings())
    app.start(["beat", "--loglevel", level, "--schedule", str(schedule)])


@command()
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--insecure", is_flag=True, help="Run without authentication (local use only).")
def flower(port: int, address: str, insecure: bool) -> None:
    """Start Flower for this farm (basic auth from HIVE_FLOWER_BASIC_AUTH)."""
    from hive.settings import get_settings
    from hive.tasks.app import app

    auth = get_settings().flower_basic_auth
    if not auth and not insecure:
        fail("Flower needs HIVE_FLOWER_BASIC_AUTH=user:password (or --insecure for local use)")
    argv = ["flower", f"--port={port}", f"--address={address}"]
    if auth:
        # Given to Flower through its own variable so the password never shows in `ps`.
        os.environ["FLOWER_BASIC_AUTH"] = auth
    app.start(argv)
