"""A worker dies mid-step: the step runs again elsewhere, its success is recorded once."""

from __future__ import annotations

import os
import signal

import pytest

from hive import Client
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


def _running(run_id: object, step_id: str) -> bool:
    return db.steps_of(run_id)[step_id].status == "running"


def test_step_runs_again_on_another_worker_when_its_worker_is_killed_mid_step(
    start_worker, start_beat, success_audit
) -> None:
    doomed = start_worker("--concurrency", "1", extra_env=FAST, name="doomed")
    run = Client().submit("fault-sleep", {"seconds": 1.5})
    wait_until(lambda: _running(run.id, "nap"), 20, "the step to start")

    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker: main process and pool
    start_worker("--concurrency", "1", extra_env=FAST, name="rescuer")
    start_beat(extra_env=FAST)

    assert run.wait(timeout=60) == {"after": {"text": "after the nap"}}
    nap = db.steps_of(run.id)["nap"]
    assert nap.status == "succeeded"
    assert nap.attempt == 2
    assert nap.worker.startswith("rescuer@")
    assert [a.error["type"] for a in db.attempts_of(run.id, "nap")] == ["lease_expired"]
    assert db.duplicate_successes() == 0


def test_step_is_retried_at_once_when_its_pool_process_is_killed(
    start_worker, success_audit
) -> None:
    worker = start_worker("--concurrency", "1", extra_env=FAST)
    run = Client().submit("fault-sleep", {"seconds": 1.5})
    wait_until(lambda: _running(run.id, "nap"), 20, "the step to start")

    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)  # like the OOM killer taking one pool process

    run.wait(timeout=30)  # no beat: the worker's main process records the loss and retries
    assert db.steps_of(run.id)["nap"].attempt == 2
    assert [a.error["type"] for a in db.attempts_of(run.id, "nap")] == ["worker_lost"]
    assert db.duplicate_successes() == 0


def test_poison_step_that_kills_its_worker_every_time_ends_in_the_dead_letters(
    start_worker,
) -> None:
    from hive.errors import RunFailed

    start_worker("--concurrency", "1", extra_env=FAST)
    run = Client().submit("fault-crash", {"times": 99})

    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)
    assert failed.value.step_id == "boom"
    steps = db.steps_of(run.id)
    assert steps["boom"].status == "failed"
    assert steps["boom"].attempt == 3  # max_retries 2
    assert steps["after"].status == "skipped"
    letters = db.rows("SELECT * FROM dead_letters WHERE run_id = :id", id=str(run.id))
    assert [(d.step_id, d.attempts, d.error["type"]) for d in letters] == [
        ("boom", 3, "worker_lost")
    ]


def test_step_that_crashes_once_succeeds_on_its_second_attempt(start_worker) -> None:
    start_worker("--concurrency", "1", extra_env=FAST)
    run = Client().submit("fault-crash", {"times": 1})
    assert run.wait(timeout=60) == {"after": {"text": "survived"}}
    assert db.steps_of(run.id)["boom"].attempt == 2


def test_a_lost_worker_report_for_an_attempt_that_had_succeeded_sends_its_chain_on(
    start_worker,
) -> None:
    """The pool process recorded the step's success and died before Celery sent the rest of
    its chain: the main process reports the attempt lost, and the steps the success made
    ready are sent again instead of waiting for the age-based re-send."""
    from sqlalchemy import text

    from hive.db.engine import get_engine
    from hive.tasks import outcomes
    from hive.tasks.app import app

    run = Client().submit("fault-chain3", {"text": "chain goes on"})
    app.control.purge()  # the chain's message is gone with the process
    with get_engine().begin() as conn:  # step a as its success left it
        conn.execute(
            text(
                "UPDATE step_runs SET status = 'succeeded', attempt = 1,"
                " output = jsonb_build_object('text', CAST(:text AS text)),"
                " enqueued_at = NULL, finished_at = now() WHERE run_id = :id AND step_id = 'a'"
            ),
            {"id": run.id, "text": "chain goes on"},
        )
        conn.execute(
            text("UPDATE step_runs SET pending_needs = 0 WHERE run_id = :id AND step_id = 'b'"),
            {"id": run.id},
        )
        conn.execute(
            text("UPDATE runs SET steps_remaining = 2, status = 'running' WHERE id = :id"),
            {"id": run.id},
        )
    lost = {"type": "worker_lost", "message": "signal 9", "traceback": None}

    assert outcomes.record_failed_attempt(run.id, "a", 1, lost) is None  # lost: no outcome
    start_worker("--concurrency", "1")
    assert run.wait(timeout=30) == {"c": {"text": "chain goes on"}}
    assert db.attempts_of(run.id, "a") == []
