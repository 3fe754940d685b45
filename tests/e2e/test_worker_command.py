"""`hive worker` as a supervisor sees it: its exit status, its log level, its one broker."""

from __future__ import annotations

import resource
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.commands import describe, run_hive
from tests.support.processes import HIVE, HiveProcess


def _limit_open_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    return apply


@pytest.mark.timeout(180)
def test_worker_exits_non_zero_when_celery_stops_on_an_unrecoverable_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    # 32 descriptors get the worker through its checks of Redis and PostgreSQL, but not
    # through the pipes of 16 pool processes: Celery logs "Unrecoverable error" and stops.
    done = subprocess.run(
        [*HIVE, "worker", "--concurrency", "16", "--hostname", "nofile@test"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False,
        preexec_fn=_limit_open_files(32),
    )  # fmt: skip

    assert "Too many open files" in done.stderr, describe(done)
    assert done.returncode != 0, describe(done)


@pytest.mark.timeout(120)
def test_worker_exits_zero_on_a_warm_shutdown(
    start_worker: Callable[..., HiveProcess],
) -> None:
    worker = start_worker("--concurrency", "1")

    worker.proc.terminate()

    assert worker.proc.wait(timeout=60) == 0, worker.log()[-3000:]


@pytest.mark.timeout(120)
def test_worker_loglevel_option_wins_over_hive_log_level(
    start_worker: Callable[..., HiveProcess],
) -> None:
    worker = start_worker("--loglevel", "DEBUG", extra_env={"HIVE_LOG_LEVEL": "INFO"})

    # Celery's bootsteps log at DEBUG once its setup_logging signal has configured logging.
    assert " DEBUG celery.bootsteps: " in worker.log(), worker.log()[-3000:]


@pytest.mark.parametrize(
    ("variable", "ours"),
    [
        ("CELERY_BROKER_URL", "HIVE_BROKER_URL"),
        ("CELERY_BROKER_WRITE_URL", "HIVE_BROKER_URL"),
        ("CELERY_RESULT_BACKEND", "HIVE_RESULT_BACKEND"),
    ],
)
@pytest.mark.timeout(90)
def test_worker_refuses_a_celery_variable_that_would_redirect_celery_alone(
    variable: str, ours: str, env: dict[str, str], tmp_path: Path
) -> None:
    # Nothing listens there: a worker that took it would retry forever.
    elsewhere = "redis://:celery-secret@127.0.0.1:1/0"

    try:
        done = run_hive("worker", env={**env, variable: elsewhere}, timeout_s=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hive worker started with {variable} set instead of refusing it")

    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, describe(done)
    assert len(lines) == 1, describe(done)
    assert lines[0].startswith(f"error: {variable}: "), describe(done)
    assert ours in lines[0]
    assert "celery-secret" not in done.stderr


@pytest.mark.timeout(120)
def test_worker_warns_once_of_each_queue_no_pipeline_routes_to_and_takes_it_all_the_same(
    start_worker: Callable[..., HiveProcess],
) -> None:
    # fault-taken is a queue the test pipelines route steps to; the two others none does.
    worker = start_worker("--queues", "nosuchqueue, hive.default,fault-taken,later")

    log = worker.log()
    warnings = [line for line in log.splitlines() if "--queues: no pipeline routes" in line]
    assert len(warnings) == 1, log[-3000:]
    (warning,) = warnings
    assert " WARNING " in warning
    assert "a step to 'nosuchqueue', 'later', so this worker takes nothing from them" in warning
    assert "use fault-taken, hive.default" in warning  # what the pipelines do use
    assert "hive.maintenance" in warning
    # Celery's banner lists the queues it consumes: every one given, the unknown ones too.
    for queue in ("nosuchqueue", "later", "fault-taken"):
        assert f".> {queue} " in log, log[-3000:]


@pytest.mark.timeout(120)
def test_worker_on_queues_the_pipelines_use_warns_of_none(
    start_worker: Callable[..., HiveProcess],
) -> None:
    worker = start_worker("--queues", "hive.default,fault-taken,hive.maintenance")

    assert "--queues:" not in worker.log(), worker.log()[-3000:]
