"""A farm on a Redis that wants a password: worker, beat, producer and maintenance all use
HIVE_BROKER_URL's, and none of them writes it to a log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess, wait_until
from tests.support.redis_server import RedisServer

PASSWORD = "s3cret-redis-pw"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path, password=PASSWORD)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_a_farm_on_a_password_protected_redis_runs_and_recovers_without_logging_it(
    private_redis: RedisServer, env: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=private_redis.port).ping()
    farm_env = {**env, "HIVE_BROKER_URL": private_redis.url, "HIVE_RECOVERY_INTERVAL_S": "1"}
    processes: list[HiveProcess] = []
    try:
        worker = HiveProcess(
            ["worker", "--hostname", "pw@test", "--concurrency", "2"],
            farm_env, tmp_path / "worker.log",
        )  # fmt: skip
        processes.append(worker)
        worker.wait_for_log("ready.", timeout_s=60)
        beat = HiveProcess(
            ["beat", "--schedule", str(tmp_path / "beat.schedule")],
            farm_env, tmp_path / "beat.log",
        )  # fmt: skip
        processes.append(beat)

        submitted = run_hive(
            "submit", "echo-one", "--input", json.dumps({"text": "hi"}),
            "--wait", "--timeout", "60", env=farm_env,
        )  # fmt: skip
        recovered = run_hive("maintenance", "recover", env=farm_env)
        # Beat's recovery runs on the worker and takes its lock on this Redis.
        wait_until(
            lambda: _succeeded(worker, "hive.beat.recover_stalled_runs"),
            60,
            "beat's recovery sweep to run on the worker",
        )
    finally:
        for proc in processes:
            proc.stop()

    assert submitted.returncode == 0, describe(submitted)
    assert json.loads(submitted.stdout.split("\n", 1)[1]) == {"echo": {"text": "hi"}}
    assert recovered.returncode == 0, describe(recovered)
    texts = [worker.log(), beat.log(), submitted.stdout, submitted.stderr, recovered.stderr]
    assert not [text for text in texts if PASSWORD in text]


def _succeeded(worker: HiveProcess, task: str) -> bool:
    return any(f"{task}[" in line and " succeeded " in line for line in worker.log().splitlines())
