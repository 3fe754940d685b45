"""`hive healthcheck`: what docker compose runs beside each process, against real ones."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess, wait_until
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(180)

FLOWER_AUTH = "admin:flower-pw"


def _healthy(env: dict[str, str], *args: str) -> bool:
    done = run_hive("healthcheck", *args, env=env)
    assert done.returncode in (0, 1), describe(done)
    if done.returncode == 0:
        assert done.stdout.startswith("healthy: "), describe(done)
    else:
        assert done.stderr.startswith("unhealthy: "), describe(done)
    return done.returncode == 0


def _why(env: dict[str, str], *args: str) -> str:
    done = run_hive("healthcheck", *args, env=env)
    assert done.returncode == 1, describe(done)
    return done.stderr


@pytest.fixture
def start_process(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., HiveProcess]]:
    started: list[HiveProcess] = []

    def start(*args: str, ready: str, extra_env: dict[str, str] | None = None) -> HiveProcess:
        proc = HiveProcess(
            list(args), {**env, **(extra_env or {})}, tmp_path / f"p{len(started)}.log"
        )
        started.append(proc)
        proc.wait_for_log(ready, timeout_s=60)
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_a_worker_is_healthy_while_it_answers_a_ping_and_not_when_frozen_or_gone(
    env: dict[str, str], start_process: Callable[..., HiveProcess]
) -> None:
    # No --hostname: the node name the check pings by default, as in a container.
    worker = start_process("worker", "--concurrency", "1", ready="ready.")
    name = f"hive@{socket.gethostname()}"

    assert _healthy(env, "worker")
    assert _healthy(env, "worker", "--node", name)
    assert f"worker other@{socket.gethostname()} did not answer" in _why(
        env, "worker", "--node", f"other@{socket.gethostname()}", "--timeout", "1"
    )

    worker.signal(signal.SIGSTOP)  # frozen: alive, but not consuming
    try:
        assert f"worker {name} did not answer a ping within 1s" in _why(
            env, "worker", "--timeout", "1"
        )
    finally:
        worker.signal(signal.SIGCONT)
    wait_until(lambda: _healthy(env, "worker"), 30, "the thawed worker to answer")

    worker.stop()
    assert not _healthy(env, "worker", "--timeout", "1")


def test_beat_is_healthy_once_its_maintenance_runs_and_not_after_it_stops(
    env: dict[str, str], start_process: Callable[..., HiveProcess], tmp_path: Path
) -> None:
    assert "no maintenance task has run yet" in _why(env, "beat")

    fast = {"HIVE_HEALTH_INTERVAL_S": "1", "HIVE_RECOVERY_INTERVAL_S": "1"}
    start_process("worker", "--concurrency", "1", "--hostname", "m@test", ready="ready.")
    beat = start_process(
        "beat", "--schedule", str(tmp_path / "schedule"), ready="beat: Starting", extra_env=fast
    )
    # The default window follows the settings: three of the shortest interval (1 s here).
    wait_until(lambda: _healthy({**env, **fast}, "beat"), 60, "beat's maintenance to run")

    beat.stop()
    wait_until(
        lambda: not _healthy({**env, **fast}, "beat"), 30, "the check to see beat has stopped"
    )
    assert "no maintenance task ran in the last 3s (" in _why({**env, **fast}, "beat")
    assert _healthy(env, "beat", "--within", "600")


def test_flower_is_healthy_only_with_its_authentication_in_force(
    env: dict[str, str], start_process: Callable[..., HiveProcess]
) -> None:
    port = free_port()
    auth = {"HIVE_FLOWER_BASIC_AUTH": FLOWER_AUTH}
    start_process("flower", "--port", str(port), ready="Visit me at", extra_env=auth)

    wait_until(lambda: _healthy({**env, **auth}, "flower", "--port", str(port)), 30, "flower")
    wrong = {"HIVE_FLOWER_BASIC_AUTH": "admin:wrong"}
    assert "answered 401, not 200" in _why({**env, **wrong}, "flower", "--port", str(port))
    assert "does not answer" in _why(
        {**env, **auth}, "flower", "--port", str(free_port()), "--timeout", "1"
    )

    # A Flower serving without authentication is not what the check was told to expect.
    open_port = free_port()
    start_process("flower", "--port", str(open_port), "--insecure", ready="Visit me at")
    wait_until(lambda: _healthy(env, "flower", "--port", str(open_port)), 30, "open flower")
    assert "Flower answered 200 without credentials" in _why(
        {**env, **auth}, "flower", "--port", str(open_port)
    )


def test_the_exporter_is_healthy_while_it_serves_its_figures(
    env: dict[str, str], start_process: Callable[..., HiveProcess]
) -> None:
    port = free_port()
    exporter = start_process("exporter", "--port", str(port), ready="serving /metrics")

    assert _healthy(env, "exporter", "--port", str(port))
    assert _healthy({**env, "HIVE_EXPORTER_PORT": str(port)}, "exporter")

    exporter.stop()
    assert "does not answer" in _why(env, "exporter", "--port", str(port), "--timeout", "1")


def test_a_bad_healthcheck_command_line_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    done = run_hive("healthcheck", "worker", "--timeout", "0", env=env)

    assert done.returncode == 2, describe(done)
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
    assert "--timeout" in done.stderr


@pytest.mark.timeout(120)
def test_worker_check_with_redis_unreachable_says_so_in_one_line(env: dict[str, str]) -> None:
    """Not "the worker did not answer a ping": the check could not ask."""
    down = {**env, "HIVE_BROKER_URL": "redis://:s3cret@127.0.0.1:1/0"}

    result = run_hive("healthcheck", "worker", env=down)

    assert result.returncode == 1, describe(result)
    assert result.stderr.strip().splitlines() == [
        "unhealthy: cannot reach the server at HIVE_BROKER_URL: "
        "Error 111 connecting to 127.0.0.1:1. Connection refused."
    ], describe(result)
    assert "s3cret" not in result.stdout + result.stderr
