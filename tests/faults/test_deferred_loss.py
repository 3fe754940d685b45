"""A message with a countdown (a deferral, a retry's backoff) is held by the worker that took
it until its countdown ends: if that worker dies, or Redis loses everything, the step is
still sent again from PostgreSQL, once it falls due, and the run finishes."""

from __future__ import annotations

import ast
import json
import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from hive import Client, Run
from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(180)


def _deferred_once(run_id: object) -> bool:
    return db.scalar("SELECT deferrals FROM step_runs WHERE run_id = :id", id=str(run_id)) == 1


def _exits_within(process: HiveProcess, timeout_s: float) -> bool:
    """Whether ``process`` exits within ``timeout_s`` (False: it is still running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            return True
        time.sleep(0.2)
    return False


# Heartbeats every second, a worker silent for 6 s found lost by a health sweep every second.
_LOSS_FOUND_FAST = {**FAST, "HIVE_WORKER_HEARTBEAT_S": "1", "HIVE_WORKER_LOST_AFTER_S": "6",
                    "HIVE_HEALTH_INTERVAL_S": "1"}  # fmt: skip


def _due(run_id: object) -> bool:
    return bool(db.scalar("SELECT bool_and(enqueued_at <= now()) FROM step_runs"
                          " WHERE run_id = :id", id=str(run_id)))  # fmt: skip


def _swept() -> bool:
    """Recovery has swept once. Its first sweep takes the broker for reset (no marker key
    yet) and sends every marked step again: a step marked before it gets one more
    ``redispatch`` than the test counts. Another task's first maintenance event (the health
    sweep's, often first) says nothing of recovery's."""
    return bool(db.scalar("SELECT count(*) FROM events WHERE kind = 'maintenance'"
                          " AND detail->>'task' = 'recover'"))  # fmt: skip


def _held_by_a_worker(
    client: redis.Redis, run_id: object, attempt: int, step_id: str = "wait"
) -> bool:
    """Whether a worker has taken the message of the step's ``attempt`` (kombu keeps a
    message a worker holds in its ``unacked`` hash until it is acknowledged)."""
    for value in client.hvals("unacked"):
        payload, *_ = json.loads(value)
        argsrepr = payload.get("headers", {}).get("argsrepr") or "()"
        if tuple(ast.literal_eval(argsrepr)) == (str(run_id), step_id, attempt):
            return True
    return False


def _a_deferred_step_held_by(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    client: redis.Redis,
    env: dict[str, str],
) -> tuple[HiveProcess, Run]:
    """A worker "holder" and beat started, then a run whose step is deferred once (3 s) and
    whose deferred message (attempt 2) the holder has taken: the holder, the run."""
    holder = start_worker("--concurrency", "1", extra_env=env, name="holder")
    start_beat(extra_env=env)
    # Recovery's first sweep sends every marked step again (it finds no broker marker yet).
    wait_until(_swept, 30, "recovery's first sweep")
    run = Client().submit("deferred", {"times": 1, "countdown_s": 3})
    wait_until(lambda: _deferred_once(run.id), 30, "the step to be deferred once")
    # The deferral's message (attempt 2) goes out after its commit: killing the holder
    # before it takes it would leave it in the queue for the next worker (no resend).
    wait_until(lambda: _held_by_a_worker(client, run.id, 2), 30, "the holder to take it")
    return holder, run


def test_a_deferred_step_whose_worker_dies_holding_its_message_still_runs(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    redis_db: tuple[redis.Redis, int],
) -> None:
    env = {**FAST, "HIVE_REDISPATCH_AFTER_S": "2"}
    holder, run = _a_deferred_step_held_by(start_worker, start_beat, redis_db[0], env)

    # Its message (due in 3 s) now sits in the holder's memory and Redis's unacked hash,
    # invisible for HIVE_VISIBILITY_TIMEOUT_S (4 h).
    holder.signal(signal.SIGKILL)
    start_worker("--concurrency", "1", extra_env=env, name="other")

    assert run.wait(timeout=90) == {"wait": {"attempt": 2}}
    row = db.steps_of(run.id)["wait"]
    assert row.worker == "celery@other" or row.worker.endswith("other@test")
    assert row.resends == 1, "sent again once, after it fell due"


@pytest.mark.parametrize("replacement", ["other", "holder"])
def test_a_message_held_by_a_worker_that_dies_is_sent_again_once_the_worker_is_lost(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    redis_db: tuple[redis.Redis, int],
    replacement: str,
) -> None:
    """As above with the default re-send threshold (600 s): the holder's message stays in
    Redis's unacked hash, so its queue is a message short, and the holder's loss is reason
    enough to send the step again, not 600 s of waiting. Found lost by the health sweep
    (another worker takes over), or started again under its own name before that."""
    env = _LOSS_FOUND_FAST
    holder, run = _a_deferred_step_held_by(start_worker, start_beat, redis_db[0], env)

    holder.signal(signal.SIGKILL)
    # Its loss is found after its message fell due: started again after that, or found
    # silent 6 s after its last heartbeat (at most 1 s ago).
    wait_until(lambda: _due(run.id), 30, "the step to fall due")
    start_worker("--concurrency", "1", extra_env=env, name=replacement)

    assert run.wait(timeout=60) == {"wait": {"attempt": 2}}
    row = db.steps_of(run.id)["wait"]
    assert row.worker.endswith(f"{replacement}@test") and row.resends == 1
    holder_row = db.rows("SELECT state, lost_at FROM workers WHERE name LIKE 'holder%'")[0]
    assert holder_row.lost_at is not None
    assert holder_row.state == ("lost" if replacement == "other" else "online")


@pytest.mark.parametrize("replacement", ["other", "holder"])
def test_a_retry_held_by_a_worker_lost_before_its_countdown_ends_runs_once_it_falls_due(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    redis_db: tuple[redis.Redis, int],
    replacement: str,
) -> None:
    """A retry's message (a 20 s Retry-After) taken by a worker that is SIGKILLed and found
    lost before the countdown ends: nothing was due at the loss, and Redis keeps the message
    in its unacked hash for the visibility timeout (4 h), the re-send threshold is 600 s.
    The step is sent again once it falls due (plus a few seconds' grace), once."""
    env = _LOSS_FOUND_FAST
    holder = start_worker("--concurrency", "1", extra_env=env, name="holder")
    start_beat(extra_env=env)
    wait_until(_swept, 30, "recovery's first sweep")
    run = Client().submit("retry-after", {"times": 1, "retry_after_s": 20})
    wait_until(lambda: _held_by_a_worker(redis_db[0], run.id, 2, "throttled"), 30, "the retry")
    due = db.steps_of(run.id)["throttled"].enqueued_at

    holder.signal(signal.SIGKILL)
    start_worker("--concurrency", "1", extra_env=env, name=replacement)
    lost_at = "SELECT lost_at FROM workers WHERE name LIKE 'holder%' AND lost_at IS NOT NULL"
    wait_until(lambda: db.rows(lost_at), 30, "the holder to be found lost")
    assert db.scalar(lost_at) < due, "found lost before the retry fell due: the case tested"

    assert run.wait(timeout=60) == {"throttled": {"attempt": 2}}
    row = db.steps_of(run.id)["throttled"]
    assert row.worker.endswith(f"{replacement}@test") and row.resends == 1
    sent_again = db.rows("SELECT created_at, detail FROM events WHERE kind = 'redispatch'"
                         " AND run_id = :id", id=str(run.id))  # fmt: skip
    history = db.rows("SELECT created_at, kind, run_id, step_id, detail FROM events"
                      " WHERE kind <> 'maintenance' ORDER BY id")  # fmt: skip
    workers = db.rows("SELECT name, state, started_at, heartbeat_at, lost_at FROM workers")
    told = "\n".join(map(str, [f"due {due}", *history, *workers]))
    assert len(sent_again) == 1 and sent_again[0].created_at >= due, told


def test_a_deferred_step_runs_when_redis_restarts_empty_while_it_waits(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    own_redis,
) -> None:
    env = {**FAST, "HIVE_BROKER_URL": own_redis.url}
    worker = start_worker("--concurrency", "1", extra_env=env)
    start_beat(extra_env=env)
    wait_until(_swept, 30, "recovery's first sweep")
    (run_id,) = producer.submit(
        {**os.environ, **hive_env, **env}, "deferred", [{"times": 1, "countdown_s": 3}]
    )
    run = Client().run(run_id)
    wait_until(lambda: _deferred_once(run.id), 30, "the step to be deferred once")

    own_redis.restart_empty()
    # A worker holding a message with a countdown when its broker connection drops exits
    # ("Unrecoverable error", kombu 5.7 restoring the unacknowledged message through a
    # connection it already closed): its supervisor starts it again.
    # Its exit takes a while on a loaded machine: wait for it, not a fixed time.
    if _exits_within(worker, 20):
        start_worker("--concurrency", "1", extra_env=env, name="restarted")

    assert run.wait(timeout=90) == {"wait": {"attempt": 2}}


def test_a_warm_shutdown_gives_back_the_deferred_message_it_holds(
    start_worker: Callable[..., HiveProcess], redis_db: tuple[redis.Redis, int]
) -> None:
    holder = start_worker("--concurrency", "1", extra_env=FAST, name="holder")
    run = Client().submit("deferred", {"times": 1, "countdown_s": 5})
    wait_until(lambda: _deferred_once(run.id), 30, "the step to be deferred once")
    wait_until(lambda: _held_by_a_worker(redis_db[0], run.id, 2), 30, "the holder to take it")

    # Warm: nothing is running, so the worker stops at once, its countdown message unrun.
    holder.signal(signal.SIGTERM)
    assert _exits_within(holder, 30)
    # No beat, so no recovery: the message itself must be back in its queue.
    start_worker("--concurrency", "1", extra_env=FAST, name="other")

    assert run.wait(timeout=60) == {"wait": {"attempt": 2}}
    row = db.steps_of(run.id)["wait"]
    assert row.worker.endswith("other@test") and row.resends == 0
