"""Many slow outside calls in flight on one ``--pool threads`` worker, with the farm's
guarantees intact: 200 at once, every run finishing after the worker is SIGKILLed with them
in flight, a warm shutdown finishing what it runs, and each thread's log records carrying
their own step's ids."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable

import pytest

from bench.slow_server import SlowServerProcess
from hive import Client
from hive.client import Run
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import HiveProcess, wait_until

_THREADS = ("--pool", "threads")
# The registry's sweep takes a silent worker's steps back within seconds, not a lease.
_QUICK_LOSS = {**FAST, "HIVE_WORKER_HEARTBEAT_S": "1", "HIVE_WORKER_LOST_AFTER_S": "3"}


def _submit(count: int, server: SlowServerProcess) -> list[Run]:
    """``count`` runs of one http step each, the i-th calling the path ``/call/<i>``."""
    client = Client()
    return [client.submit("fault-call", {"url": server.call_url(str(i))}) for i in range(count)]


def _wait_all(runs: list[Run], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for run in runs:
        output = run.wait(timeout=max(deadline - time.monotonic(), 1))
        assert output["call"]["status"] == 200, output


def _running_steps() -> int:
    return int(db.scalar("SELECT count(*) FROM step_runs WHERE status = 'running'"))


@pytest.mark.timeout(300)
def test_two_hundred_slow_calls_are_in_flight_at_once_on_one_thread_pool_worker(
    start_worker: Callable[..., HiveProcess],
    slow_server: Callable[[float], SlowServerProcess],
    success_audit: None,
) -> None:
    # Each call is held 8 s: long enough for one worker to start all 200 while the
    # first still wait, however loaded the machine.
    server = slow_server(8.0)
    runs = _submit(200, server)
    worker = start_worker(*_THREADS, "--concurrency", "200")

    peak = server.wait_for("peak", 200, timeout_s=120)

    assert peak >= 200, f"at most {peak} calls were in flight at once"
    _wait_all(runs, 120)
    assert server.stats()["served"] == 200
    assert db.duplicate_successes() == 0
    registered = db.rows("SELECT pool, concurrency FROM workers")
    assert [(w.pool, w.concurrency) for w in registered] == [("threads", 200)]
    assert worker.proc.poll() is None


@pytest.mark.timeout(300)
def test_every_run_finishes_after_a_thread_pool_worker_is_killed_with_many_calls_in_flight(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    slow_server: Callable[[float], SlowServerProcess],
    success_audit: None,
) -> None:
    server = slow_server(3.0)
    runs = _submit(120, server)
    doomed = start_worker(*_THREADS, "--concurrency", "200", extra_env=_QUICK_LOSS, name="doomed")
    wait_until(lambda: server.stats()["in_flight"] >= 100, 120, "100 calls in flight")

    os.killpg(doomed.pid, signal.SIGKILL)  # main process and every thread at once
    doomed.proc.wait(timeout=10)
    start_beat(extra_env=_QUICK_LOSS)
    start_worker(*_THREADS, "--concurrency", "200", extra_env=_QUICK_LOSS, name="rescuer")

    _wait_all(runs, 180)
    assert db.duplicate_successes() == 0
    taken_back = db.rows(
        "SELECT error->>'type' AS kind, count(*) AS n FROM step_attempts GROUP BY 1"
    )
    kinds = {row.kind: row.n for row in taken_back}
    assert set(kinds) <= {"worker_lost", "lease_expired"}, kinds
    assert sum(kinds.values()) >= 100, "the killed attempts are recorded as lost"
    finishers = db.rows("SELECT DISTINCT worker FROM step_runs WHERE status = 'succeeded'")
    assert any(row.worker.startswith("rescuer@") for row in finishers)


@pytest.mark.timeout(240)
def test_a_warm_shutdown_finishes_the_calls_in_flight_and_leaves_the_rest_queued(
    start_worker: Callable[..., HiveProcess],
    slow_server: Callable[[float], SlowServerProcess],
    success_audit: None,
) -> None:
    server = slow_server(3.0)
    runs = _submit(60, server)
    first = start_worker(*_THREADS, "--concurrency", "20", extra_env=FAST, name="first")
    wait_until(lambda: server.stats()["in_flight"] >= 20, 60, "20 calls in flight")

    first.signal(signal.SIGTERM)
    first.proc.wait(timeout=60)

    by_first = db.rows("SELECT status, attempt FROM step_runs WHERE worker LIKE 'first@%'")
    assert len(by_first) >= 20
    assert {(r.status, r.attempt) for r in by_first} == {("succeeded", 1)}, "none cut short"
    # Messages it had not started stayed in Redis (no prefetch): another worker takes them.
    start_worker(*_THREADS, "--concurrency", "20", extra_env=FAST, name="second")
    _wait_all(runs, 120)
    assert db.scalar("SELECT max(attempt) FROM step_runs") == 1, "nothing was lost"
    assert db.scalar("SELECT count(*) FROM step_attempts") == 0
    assert db.duplicate_successes() == 0


# The http agent's DEBUG record of each answer names the path called: /call/<i> for run i.
_ANSWER = re.compile(r"^GET http://127\.0\.0\.1:\d+/call/(\d+) answered 200 ")


@pytest.mark.timeout(240)
def test_log_records_of_steps_running_side_by_side_in_threads_carry_their_own_ids(
    start_worker: Callable[..., HiveProcess],
    slow_server: Callable[[float], SlowServerProcess],
) -> None:
    server = slow_server(2.0)
    runs = _submit(40, server)
    worker = start_worker(
        *_THREADS, "--concurrency", "40",
        extra_env={"HIVE_LOG_FORMAT": "json", "HIVE_LOG_LEVEL": "DEBUG"},
    )  # fmt: skip
    _wait_all(runs, 120)
    assert server.stats()["peak"] >= 10, "the steps did overlap"

    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    answers = [(r, int(m.group(1))) for r in records if (m := _ANSWER.match(r["message"]))]
    assert sorted(i for _, i in answers) == list(range(40)), "one answer per step, each logged"
    for record, i in answers:
        # Logged on an agent thread: the ids are those of the step that made this call.
        assert (record.get("run_id"), record.get("step_id")) == (str(runs[i].id), "call")
        assert (record.get("agent"), record.get("attempt")) == ("http", 1)
