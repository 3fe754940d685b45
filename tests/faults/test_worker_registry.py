"""Workers in the registry: each registers, heartbeats and leaves cleanly; one that stops
heartbeating is marked lost and its steps run again elsewhere, long before their lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.metadata import version

import celery
import pytest

from hive import Client
from hive.errors import PermissionDenied
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(120)

# Heartbeats twice a second; silent for 3 s is lost (the health sweep runs every second).
BEATING = {
    "HIVE_WORKER_HEARTBEAT_S": "0.5",
    "HIVE_WORKER_LOST_AFTER_S": "3",
    "HIVE_HEALTH_INTERVAL_S": "1",
}
ENV = {**FAST, **BEATING}


def _worker(name: str) -> object:
    rows = db.rows("SELECT * FROM workers WHERE name = :name", name=name)
    return rows[0] if rows else None


def _events(kind: str) -> list[object]:
    return db.rows("SELECT * FROM events WHERE kind = :kind ORDER BY id", kind=kind)


def _running(run_id: object) -> bool:
    return db.steps_of(run_id)["nap"].status == "running"


def test_a_worker_registers_heartbeats_and_goes_offline_on_a_warm_shutdown(
    start_worker, hive_env
) -> None:
    worker = start_worker(
        "--concurrency", "2", "--pool", "threads", "--queues", "hive.default,hive.maintenance",
        extra_env=BEATING, name="listed",
    )  # fmt: skip
    row = _worker("listed@test")  # registered before Celery logs "ready."
    assert row is not None
    assert (row.state, row.pid, row.lost_at) == ("online", worker.pid, None)
    assert (row.queues, row.concurrency, row.pool) == (
        ["hive.default", "hive.maintenance"], 2, "threads"
    )  # fmt: skip
    assert (row.hive_version, row.celery_version) == (version("hive"), celery.__version__)
    first = row.heartbeat_at
    wait_until(lambda: _worker("listed@test").heartbeat_at > first, 10, "a heartbeat")

    (view,) = Client().workers()
    assert view.to_json() == {
        "name": "listed@test", "state": "online", "pid": worker.pid,
        "queues": ["hive.default", "hive.maintenance"], "concurrency": 2, "pool": "threads",
        "hive_version": version("hive"), "celery_version": celery.__version__,
        "started_at": view.started_at.isoformat(), "heartbeat_at": view.heartbeat_at.isoformat(),
        "lost_at": None, "heartbeat_age_s": round(view.heartbeat_age_s, 3),
    }  # fmt: skip
    listed = subprocess.run(
        [sys.executable, "-m", "hive.cli", "workers", "list", "--json"],
        env={**os.environ, **hive_env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (shown,) = json.loads(listed.stdout)
    table = subprocess.run(
        [sys.executable, "-m", "hive.cli", "workers", "list"],
        env={**os.environ, **hive_env}, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert table[0].split() == ["NAME", "STATE", "HEARTBEAT", "PID", "POOL", "QUEUES",
                                "HIVE/CELERY"]  # fmt: skip
    assert table[1].split()[:2] == ["listed@test", "online"]
    assert "threads/2" in table[1] and "hive.default,hive.maintenance" in table[1]
    moving = ("heartbeat_at", "heartbeat_age_s")
    assert {k: v for k, v in shown.items() if k not in moving} == {
        k: v for k, v in view.to_json().items() if k not in moving
    }
    with pytest.raises(PermissionDenied):
        Client(tenant="acme", role="admin").workers()

    worker.signal(signal.SIGTERM)  # warm shutdown
    worker.proc.wait(timeout=30)
    row = _worker("listed@test")
    assert (row.state, row.lost_at) == ("offline", None)
    assert [e.detail["worker"] for e in _events("worker_offline")] == ["listed@test"]
    assert [w.name for w in Client().workers(state="offline")] == ["listed@test"]
    assert Client().workers(state="online") == []


def test_a_worker_killed_mid_step_is_marked_lost_and_its_step_runs_again_before_its_lease(
    start_worker, start_beat, success_audit
) -> None:
    doomed = start_worker("--concurrency", "1", extra_env=ENV, name="doomed")
    run = Client().submit("fault-long-lease", {"seconds": 2})
    wait_until(lambda: _running(run.id), 20, "the step to start")
    lease = db.steps_of(run.id)["nap"].lease_until

    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker: main process and pool
    start_worker("--concurrency", "1", extra_env=ENV, name="rescuer")
    start_beat(extra_env=ENV)

    # The lease has two minutes to go: only the worker sweep can finish the run this soon.
    assert run.wait(timeout=60) == {"after": {"text": "after the nap"}}
    assert db.scalar("SELECT now() < :lease", lease=lease)
    nap = db.steps_of(run.id)["nap"]
    assert (nap.status, nap.attempt) == ("succeeded", 2)
    assert nap.worker == "rescuer@test"
    (attempt,) = db.attempts_of(run.id, "nap")
    assert (attempt.outcome, attempt.error["type"]) == ("retried", "worker_lost")
    assert "doomed@test" in attempt.error["message"]
    (lost,) = _events("worker_lost")
    assert lost.detail["worker"] == "doomed@test"
    assert lost.detail["steps"] == [{"run_id": str(run.id), "step_id": "nap", "attempt": 1}]
    row = _worker("doomed@test")
    assert row.state == "lost" and row.lost_at is not None
    assert _worker("rescuer@test").state == "online"
    assert db.duplicate_successes() == 0


def test_a_worker_restarted_under_its_name_before_it_is_found_lost_gives_its_steps_back(
    start_worker, start_beat, success_audit
) -> None:
    """Killed and started again under the same name at once, as a supervisor does, well
    within HIVE_WORKER_LOST_AFTER_S: the row is never lost, yet the step the killed process
    was running runs again within a sweep or two, not when its lease (122 s) runs out; the
    new process's own step is left alone."""
    env = {**ENV, "HIVE_WORKER_LOST_AFTER_S": "120"}
    doomed = start_worker("--concurrency", "1", extra_env=env, name="phoenix")
    start_beat(extra_env=env)
    run = Client().submit("fault-long-lease", {"seconds": 3})
    wait_until(lambda: _running(run.id), 20, "the step to start")
    lease = db.steps_of(run.id)["nap"].lease_until

    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker: main process and pool
    killed_at = db.scalar("SELECT clock_timestamp()")
    # Its log already says "ready.": the new process is waited for by its registration.
    again = start_worker("--concurrency", "1", extra_env=env, name="phoenix")
    wait_until(lambda: _worker("phoenix@test").pid == again.pid, 60, "the restart to register")

    assert run.wait(timeout=60) == {"after": {"text": "after the nap"}}
    nap = db.steps_of(run.id)["nap"]
    print(f"\nrestarted worker's step: ran again {(nap.started_at - killed_at).total_seconds():.1f}"
          f"s after the kill; its lease had {(lease - nap.started_at).total_seconds():.0f}s"
          " to go")  # fmt: skip
    assert db.scalar("SELECT now() < :lease", lease=lease)
    assert (nap.status, nap.attempt, nap.worker) == ("succeeded", 2, "phoenix@test")
    (attempt,) = db.attempts_of(run.id, "nap")
    assert (attempt.outcome, attempt.error["type"]) == ("retried", "worker_lost")
    assert attempt.error["message"] == "worker phoenix@test was started again while running it"
    row = _worker("phoenix@test")
    assert (row.state, row.pid) == ("online", again.pid) and row.lost_at is not None
    assert _events("worker_lost") == [], "never found lost: its name never went silent"
    assert db.duplicate_successes() == 0


def test_a_second_worker_under_a_live_workers_name_refuses_to_start_and_takes_nothing_back(
    start_worker, start_beat, hive_env, tmp_path, success_audit
) -> None:
    """Two live processes must not share a node name (the same --hostname on two machines):
    the second exits at start with one error line, and the first keeps its row and its
    running step, which the sweep leaves alone and runs once."""
    first = start_worker("--concurrency", "1", extra_env=ENV, name="twin")
    start_beat(extra_env=ENV)
    run = Client().submit("fault-long-lease", {"seconds": 15})
    wait_until(lambda: _running(run.id), 20, "the step to start")
    registered = _worker("twin@test")

    second = HiveProcess(
        ["worker", "--hostname", "twin@test", "--concurrency", "1"],
        {**os.environ, **hive_env, **ENV}, tmp_path / "second.log",
    )  # fmt: skip
    try:
        wait_until(lambda: second.proc.poll() is not None or "ready." in second.log(), 60,
                   "the second worker to exit or start")  # fmt: skip
        assert run.wait(timeout=60) == {"after": {"text": "after the nap"}}
        nap = db.steps_of(run.id)["nap"]
        assert db.attempts_of(run.id, "nap") == [], "never taken back"
        assert (nap.status, nap.attempt, nap.worker) == ("succeeded", 1, "twin@test")
        assert second.proc.wait(timeout=30) == os.EX_CONFIG, second.log()[-3000:]
    finally:
        second.discard()
    errors = [line for line in second.log().splitlines() if "ERROR" in line]
    assert len(errors) == 1, second.log()[-3000:]
    assert "twin@test" in errors[0] and f"pid {first.pid}" in errors[0]
    assert "another --hostname" in errors[0]
    assert "Traceback" not in second.log()
    row = _worker("twin@test")
    assert (row.pid, row.started_at, row.state) == (first.pid, registered.started_at, "online")
    assert len(_events("worker_online")) == 1
    assert _events("worker_lost") == []
    assert first.proc.poll() is None
    assert db.duplicate_successes() == 0


def test_a_worker_whose_name_another_live_process_took_leaves_it_and_stops(
    start_worker,
) -> None:
    """A duplicate that slipped past the start check (both started at once) took the row:
    the displaced worker does not take it back, it records one event and stops warm."""
    worker = start_worker("--concurrency", "1", extra_env=BEATING, name="displaced")
    # What the other process's registration writes: its pid, a fresh heartbeat.
    db.execute("UPDATE workers SET pid = 999999, started_at = now(), heartbeat_at = now()"
               " WHERE name = 'displaced@test'")  # fmt: skip

    assert worker.proc.wait(timeout=60) == os.EX_CONFIG
    errors = [line for line in worker.log().splitlines() if "ERROR" in line]
    assert len(errors) == 1, worker.log()[-3000:]
    assert f"pid {worker.pid}" in errors[0] and "pid 999999" in errors[0]
    (event,) = _events("worker_duplicate")
    assert event.detail == {"worker": "displaced@test", "pid": worker.pid, "holder_pid": 999999}
    row = _worker("displaced@test")
    assert (row.pid, row.state) == (999999, "online"), "not taken back, not marked offline"
    assert len(_events("worker_online")) == 1


def test_a_worker_stopped_cleanly_starts_again_under_its_name(start_worker) -> None:
    first = start_worker("--concurrency", "1", extra_env=BEATING, name="again")
    first.signal(signal.SIGTERM)
    assert first.proc.wait(timeout=30) == 0
    assert _worker("again@test").state == "offline"

    second = start_worker("--concurrency", "1", extra_env=BEATING, name="again")
    wait_until(lambda: _worker("again@test").pid == second.pid, 60, "the restart to register")
    assert _worker("again@test").state == "online"
    assert "another live process" not in second.log()
    assert second.proc.poll() is None


def test_the_sweep_tells_a_restarted_nodes_steps_by_when_its_process_started_not_its_name(
    clean_state,
) -> None:
    """A process registers its start (when it became ready), even when its registration
    lands late: a step claimed under its name after that is its own and stays with it; one
    claimed before is an earlier process's, taken back."""
    from hive.beat.workers import sweep_workers
    from hive.db import workers as registry
    from hive.db.retrying import in_transaction

    info = registry.WorkerInfo(name="node@test", pid=4242, queues=["hive.default"],
                               concurrency=2, pool="prefork", hive_version="0",
                               celery_version=celery.__version__)  # fmt: skip
    # Ready 5 s ago, registered only now (PostgreSQL was out of reach at its start).
    in_transaction(lambda conn: registry.register(conn, info, running_s=5.0))
    earlier = Client().submit("fault-long-lease", {"seconds": 1})
    own = Client().submit("fault-long-lease", {"seconds": 1})
    for run, ago in [(earlier, "60 seconds"), (own, "2 seconds")]:
        db.execute(
            "UPDATE step_runs SET status = 'running', attempt = 1, worker = 'node@test',"
            " enqueued_at = NULL, started_at = now() - CAST(:ago AS interval),"
            " lease_until = now() + interval '2 minutes'"
            " WHERE run_id = :id AND step_id = 'nap'",
            id=str(run.id), ago=ago,
        )  # fmt: skip

    swept = sweep_workers(lost_after_s=30)

    assert (swept.workers_lost, swept.steps_taken_back) == (0, 1)
    (attempt,) = db.attempts_of(earlier.id, "nap")
    assert attempt.error["type"] == "worker_lost"
    assert db.steps_of(earlier.id)["nap"].status == "pending", "sent again"
    assert (db.steps_of(own.id)["nap"].status, db.attempts_of(own.id, "nap")) == ("running", [])
    assert sweep_workers(lost_after_s=30).steps_taken_back == 0


def test_a_frozen_worker_marked_lost_comes_back_online_and_its_late_finish_is_refused(
    start_worker, start_beat, success_audit
) -> None:
    frozen = start_worker("--concurrency", "1", extra_env=ENV, name="frozen")
    run = Client().submit("fault-long-lease", {"seconds": 3})
    wait_until(lambda: _running(run.id), 20, "the step to start")

    os.killpg(frozen.pid, signal.SIGSTOP)  # alive but silent: a long pause, a partition
    try:
        start_worker("--concurrency", "1", extra_env=ENV, name="healthy")
        start_beat(extra_env=ENV)
        wait_until(lambda: _worker("frozen@test").state == "lost", 30, "the worker lost")
        run.wait(timeout=60)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)

    wait_until(lambda: _worker("frozen@test").state == "online", 30, "the worker back")
    assert [e.detail["worker"] for e in _events("worker_back")] == ["frozen@test"]
    wait_until(lambda: bool(_events("late_finish")), 30, "the frozen attempt refused")
    nap = db.steps_of(run.id)["nap"]
    assert (nap.status, nap.attempt, nap.worker) == ("succeeded", 2, "healthy@test")
    assert db.duplicate_successes() == 0


def test_a_worker_whose_heartbeats_did_not_land_but_answers_a_ping_is_not_lost(
    start_worker, success_audit
) -> None:
    """As after PostgreSQL was out of reach for longer than HIVE_WORKER_LOST_AFTER_S: the
    heartbeats are old, but the worker answers Celery's ping, so its steps stay with it."""
    from hive.beat.workers import sweep_workers

    slow = {"HIVE_WORKER_HEARTBEAT_S": "60", "HIVE_WORKER_LOST_AFTER_S": "120"}
    start_worker("--concurrency", "1", extra_env=slow, name="quiet")
    run = Client().submit("fault-long-lease", {"seconds": 2})
    wait_until(lambda: _running(run.id), 20, "the step to start")
    db.execute("UPDATE workers SET heartbeat_at = now() - interval '1 hour'")

    swept = sweep_workers(lost_after_s=3)

    assert (swept.workers_answering, swept.workers_lost, swept.steps_taken_back) == (1, 0, 0)
    assert _worker("quiet@test").state == "online"
    assert run.wait(timeout=30) == {"after": {"text": "after the nap"}}
    assert db.steps_of(run.id)["nap"].attempt == 1
    assert _events("worker_lost") == []


def test_retention_purges_workers_gone_for_longer_than_it_and_keeps_the_rest(
    clean_state,
) -> None:
    from hive.beat.tasks import purge_now

    for name, state, age in [
        ("old-offline", "offline", "40 days"), ("old-lost", "lost", "40 days"),
        ("recent-lost", "lost", "1 day"), ("old-online", "online", "40 days"),
    ]:  # fmt: skip
        db.execute(
            "INSERT INTO workers (name, pid, queues, concurrency, pool, hive_version,"
            " celery_version, started_at, heartbeat_at, state)"
            " VALUES (:name, 1, '{hive.default}', 1, 'prefork', '0', '5', now(),"
            " now() - CAST(:age AS interval), :state)",
            name=name, state=state, age=age,
        )  # fmt: skip

    result = purge_now()

    assert result is not None and result["workers"] == 2
    assert [w.name for w in Client().workers()] == ["old-online", "recent-lost"]
