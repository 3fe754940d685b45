"""`hive status`: the farm on one screen, read from real processes' traces in PostgreSQL and
Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hive import Client, service
from hive.errors import PermissionDenied, RunFailed
from hive.service import Caller, Role
from hive.settings import get_settings
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.processes import HIVE, HiveProcess, wait_until

pytestmark = pytest.mark.timeout(120)

FAST = {"HIVE_RECOVERY_INTERVAL_S": "1", "HIVE_HEALTH_INTERVAL_S": "1"}


def _status(env: dict[str, str], exit_code: int = 0) -> Any:
    """``hive status --json``, which exits 0 when every server answered, 1 when one did not."""
    result = run_hive("status", "--json", env=env)
    assert result.returncode == exit_code, describe(result)
    return json.loads(result.stdout)


def test_status_shows_workers_waiting_runs_queues_services_and_maintenance(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    env: dict[str, str],
) -> None:
    # Only maintenance is consumed: the runs' steps wait in hive.default.
    start_worker("--queues", "hive.maintenance", extra_env=FAST, name="maint")
    start_beat(extra_env=FAST)
    # The first sweep finds Redis emptied (clean_state) and sends every marked step again:
    # submit after it, so each run has one message.
    wait_until(
        lambda: (
            db.scalar(
                "SELECT count(*) FROM events WHERE kind = 'maintenance'"
                " AND detail->>'task' = 'recover'"
            )
            >= 1
        ),
        60,
        "the first recovery sweep",
    )
    since = db.scalar("SELECT now()")
    client = Client()
    for i in range(3):
        client.submit("echo-one", {"text": f"waiting {i}"})
    client.services.register("search", "http://127.0.0.1:9/", ttl_s=3600)
    wait_until(
        lambda: (
            db.scalar(
                "SELECT count(DISTINCT detail->>'task') FROM events WHERE kind = 'maintenance'"
                " AND detail->>'task' IN ('recover', 'health') AND created_at > :t",
                t=since,
            )
            == 2
        ),
        60,
        "a recovery and a health sweep after the submits",
    )

    shown = _status(env)

    assert shown["sources"] == {"postgresql": True, "redis": True}
    assert shown["workers"]["online"] == 1
    assert shown["runs_in_flight"]["queued"] == 3
    default = next(q for q in shown["queues"] if q["name"] == "hive.default")
    assert (default["depth"], default["waiting"]) == (3, 3)
    assert default["oldest_s"] >= 0
    assert shown["services"] == {"search": {"passing": 1, "warning": 0, "critical": 0}}
    by_task = {m["task"]: m for m in shown["maintenance"]}
    assert by_task["recover"]["last_success_age_s"] is not None
    assert by_task["recover"]["overdue"] is False
    assert by_task["purge"]["last_success_age_s"] is None  # daily: not yet run

    text = run_hive("status", env=env)
    assert text.returncode == 0, describe(text)
    assert "workers      online 1" in text.stdout
    assert "queued 3 in flight" in text.stdout
    assert "hive.default" in text.stdout and "3 queued, 3 steps waiting" in text.stdout
    assert "search" in text.stdout and "passing 1" in text.stdout


@pytest.mark.timeout(120)
def test_status_shows_dead_letters_and_a_lost_worker_and_watch_refreshes_in_place(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    beating = {**FAST, "HIVE_WORKER_HEARTBEAT_S": "0.5", "HIVE_WORKER_LOST_AFTER_S": "3"}
    doomed = start_worker("--concurrency", "1", extra_env=beating, name="doomed")
    start_worker("--concurrency", "1", extra_env=beating, name="steady")
    start_beat(extra_env=beating)
    with pytest.raises(RunFailed):
        Client().submit("fails-midway", {"text": "a dead letter"}).wait(timeout=60)
    watch = subprocess.Popen(
        [*HIVE, "status", "--watch", "--interval", "0.5"],
        env=env,
        stdout=(tmp_path / "watch.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: "online 2" in (tmp_path / "watch.out").read_text(), 30, "a first screen")
        os.killpg(doomed.pid, signal.SIGKILL)
        wait_until(lambda: _status(env)["workers"]["lost"] == 1, 30, "the worker marked lost")
        wait_until(
            lambda: "lost 1, online 1" in (tmp_path / "watch.out").read_text(),
            30,
            "the watching screen to show it",
        )
    finally:
        watch.send_signal(signal.SIGINT)  # how an operator leaves it: exits 0
        try:
            assert watch.wait(timeout=15) == 0
        finally:
            if watch.poll() is None:  # never left running past the test
                os.killpg(watch.pid, signal.SIGKILL)
                watch.wait()

    shown = _status(env)
    assert shown["dead_letters"] == {"fails-midway": 1}
    assert shown["workers"] == {"online": 1, "offline": 0, "lost": 1}
    screens = (tmp_path / "watch.out").read_text()
    assert screens.count("dead letters fails-midway 1") >= 2
    assert "Traceback" not in screens


def test_status_names_an_unreachable_database_still_shows_the_queues_and_exits_1(
    env: dict[str, str],
) -> None:
    broken = {**env, "HIVE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/hive"}

    shown = _status(broken, exit_code=1)

    assert shown["sources"] == {"postgresql": False, "redis": True}
    assert shown["workers"] is None and shown["runs_in_flight"] is None
    assert any(q["name"] == "hive.default" for q in shown["queues"])
    text = run_hive("status", env=broken)
    assert text.returncode == 1, describe(text)
    assert "UNREACHABLE  postgresql" in text.stdout
    assert "hive.default" in text.stdout and "maintenance" in text.stdout
    assert "Traceback" not in text.stderr
    documented = run_hive("status", "--help", env=env).stdout
    assert "1  one did not" in documented, documented


def test_status_names_the_setting_of_an_unreachable_redis_still_shows_postgresql_and_exits_1(
    env: dict[str, str],
) -> None:
    broken = {**env, "HIVE_BROKER_URL": "redis://:s3cret@127.0.0.1:1/0"}

    shown = _status(broken, exit_code=1)
    text = run_hive("status", env=broken)

    assert shown["sources"] == {"postgresql": True, "redis": False}
    assert shown["workers"] is not None and shown["runs_in_flight"] is not None
    assert text.returncode == 1, describe(text)
    assert "UNREACHABLE  redis" in text.stdout
    assert "workers      " in text.stdout and "runs         " in text.stdout
    (warning,) = text.stderr.strip().splitlines()
    assert "cannot reach the server at HIVE_BROKER_URL: " in warning, describe(text)
    assert "s3cret" not in text.stdout + text.stderr


def test_status_is_the_operators_alone(env: dict[str, str]) -> None:
    admin = Caller(tenant="acme", role=Role.ADMIN)

    with pytest.raises(PermissionDenied):
        service.farm_status(get_settings(), admin)


# `hive status --watch` whose every refresh leaves a finalizer that takes a while, as
# redis-py's Pipeline.__del__ does (briefly) after each reading of the queues.
_SLOW_FINALIZER = """
import sys, time
from hive import service
from hive.cli import main

class Garbage:
    def __del__(self):
        print("in a finalizer", flush=True)
        time.sleep(2)

real = service.farm_status

def farm_status(*args, **kwargs):
    Garbage()  # dropped at once: its __del__ runs inside the refresh
    return real(*args, **kwargs)

service.farm_status = farm_status
sys.argv = ["hive", "status", "--watch", "--interval", "0.5"]
main()
"""


@pytest.mark.timeout(60)
def test_ctrl_c_ends_the_watch_even_when_it_lands_in_a_finalizer(
    env: dict[str, str], tmp_path: Path
) -> None:
    # A KeyboardInterrupt raised inside __del__ is printed and dropped by Python: the watch
    # went on refreshing for good (seen with redis-py's Pipeline.__del__).
    out = tmp_path / "watch.out"
    watch = subprocess.Popen(
        [sys.executable, "-c", _SLOW_FINALIZER],
        env=env,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: "in a finalizer" in out.read_text(), 30, "a finalizer running")
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=15) == 0, out.read_text()[-2000:]
    finally:
        if watch.poll() is None:
            os.killpg(watch.pid, signal.SIGKILL)
            watch.wait()
