"""A worker frozen past its lease: the step runs again elsewhere, and the frozen attempt's late
finish is refused and recorded as an event, not as a second success. Timeouts are retried."""

from __future__ import annotations

import os
import signal

import pytest

from hive import Client
from hive.errors import RunFailed
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


def test_late_finish_of_an_attempt_that_lost_its_lease_is_refused_and_recorded(
    start_worker, start_beat, success_audit
) -> None:
    frozen = start_worker("--concurrency", "1", extra_env=FAST, name="frozen")
    run = Client().submit("fault-sleep", {"seconds": 2})
    wait_until(lambda: db.steps_of(run.id)["nap"].status == "running", 20, "the step to start")

    os.killpg(frozen.pid, signal.SIGSTOP)  # alive but silent: a long GC pause, a partition
    try:
        start_worker("--concurrency", "1", extra_env=FAST, name="healthy")
        start_beat(extra_env=FAST)
        run.wait(timeout=60)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)

    try:
        wait_until(
            lambda: bool(db.rows("SELECT 1 FROM events WHERE kind = 'late_finish'")),
            30,
            "the frozen attempt to come back and be refused",
        )
    except TimeoutError:
        raise AssertionError(frozen.log()[-4000:]) from None
    (late,) = db.rows("SELECT step_id, detail FROM events WHERE kind = 'late_finish'")
    assert (late.step_id, late.detail["attempt"]) == ("nap", 1)
    nap = db.steps_of(run.id)["nap"]
    assert (nap.status, nap.attempt) == ("succeeded", 2)
    assert nap.worker.startswith("healthy@")
    assert db.duplicate_successes() == 0


def test_a_step_past_its_timeout_fails_with_type_timeout_and_is_retried(start_worker) -> None:
    start_worker("--concurrency", "1")
    run = Client().submit("fault-timeout", {})
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)
    assert failed.value.step_id == "slow"
    assert failed.value.error["type"] == "timeout"
    attempts = db.attempts_of(run.id, "slow")
    assert [(a.attempt, a.outcome, a.error["type"]) for a in attempts] == [
        (1, "retried", "timeout"),
        (2, "failed", "timeout"),
    ]


def test_a_step_that_ignores_its_soft_limit_is_killed_at_the_hard_limit_and_retried(
    start_worker,
) -> None:
    """The hard time limit kills the pool process; the worker's main process records the
    attempt as a timeout, applies the retry policy, and goes on serving other runs."""
    worker = start_worker("--concurrency", "1")
    run = Client().submit("fault-hang", {})
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)
    assert failed.value.step_id == "stuck"
    attempts = db.attempts_of(run.id, "stuck")
    assert [(a.attempt, a.outcome, a.error["type"]) for a in attempts] == [
        (1, "retried", "timeout"),
        (2, "failed", "timeout"),
    ]
    assert "TimeLimitExceeded" in attempts[0].error["message"]
    assert "Hard time limit" in worker.log()
    # A new pool process took over: the same worker finishes the next run.
    assert Client().submit("echo-one", {"text": "after"}).wait(timeout=30) is not None
