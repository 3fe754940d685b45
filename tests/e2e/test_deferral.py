"""A deferred step (StepDeferred, from the guard or the agent) waits for its countdown without
running, without using up a retry, and comes back through the one dispatcher; past
HIVE_DEFER_MAX_S it fails for good; cancellation still applies while it waits."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest

from hive import Client, RunFailed
from tests.support import db
from tests.support.commands import run_hive
from tests.support.processes import HiveProcess, wait_until


@pytest.mark.timeout(120)
def test_a_step_deferred_more_often_than_its_retries_still_succeeds_using_none(
    start_worker: Callable[..., HiveProcess],
) -> None:
    """The defer agent's max_retries is 0: one deferral counted as a try would fail it."""
    start_worker("--concurrency", "2")

    run = Client().submit("deferred", {"times": 5, "countdown_s": 0.2})
    assert run.wait(timeout=60) == {"wait": {"attempt": 6}}

    (step,) = run.view().steps
    # Five attempt numbers went to deferrals; one attempt ran.
    assert (step.status, step.attempts, step.deferrals) == ("succeeded", 1, 5)
    assert db.attempts_of(str(run.id), "wait") == [], "a deferral is no failed attempt"
    row = db.steps_of(run.id)["wait"]
    assert (row.attempt, row.attempt_base, row.deferrals) == (6, 5, 5)
    # Summarised: the 1st, 2nd and 4th deferral are events, not every one.
    events = db.rows(
        "SELECT detail FROM events WHERE run_id = :id AND kind = 'deferred' ORDER BY id",
        id=str(run.id),
    )
    assert [e.detail["deferrals"] for e in events] == [1, 2, 4]
    assert events[0].detail["reason"] == "test deferral 1"
    assert events[0].detail["countdown_s"] == 0.2
    # Each deferral waited its countdown: five of 0.2 s lie between submit and the start.
    created = db.scalar("SELECT created_at FROM runs WHERE id = :id", id=str(run.id))
    assert step.started_at is not None
    assert (step.started_at - created).total_seconds() >= 5 * 0.2 - 0.05


@pytest.mark.timeout(120)
def test_a_step_deferred_past_defer_max_fails_for_good_saying_why(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2", extra_env={"HIVE_DEFER_MAX_S": "2"})

    run = Client().submit("deferred", {"times": 1000, "countdown_s": 0.3})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=60)

    assert raised.value.error["type"] == "deferred_too_long"
    assert "HIVE_DEFER_MAX_S (2s)" in raised.value.error["message"]
    assert "test deferral" in raised.value.error["message"]
    (step,) = run.view().steps
    assert step.status == "failed"
    assert step.attempts == 1, "only the attempt that failed counts"
    assert step.deferrals >= 2
    (letter,) = db.rows("SELECT attempts FROM dead_letters WHERE run_id = :id", id=str(run.id))
    assert letter.attempts == 1


@pytest.mark.timeout(120)
def test_a_cancelled_deferred_step_never_runs_again(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2")

    run = Client().submit("deferred", {"times": 1, "countdown_s": 4})
    wait_until(
        lambda: (
            db.scalar("SELECT deferrals FROM step_runs WHERE run_id = :id", id=str(run.id)) == 1
        ),
        30,
        "the step to be deferred once",
    )
    assert Client().cancel(run.id)

    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    # Past the countdown, its message came back and found nothing to claim.
    time.sleep(5)
    row = db.steps_of(run.id)["wait"]
    assert (row.status, row.attempt, row.deferrals) == ("cancelled", 1, 1)


@pytest.mark.timeout(120)
def test_recovery_does_not_send_a_deferred_step_again_before_it_falls_due(
    hive_env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    """Re-sends come only for messages presumed lost; a deferred step's message is held by
    its worker until its countdown ends, and its mark says when that is."""
    start_worker("--concurrency", "2")
    env = {**os.environ, **hive_env, "HIVE_REDISPATCH_AFTER_S": "1"}
    # The first sweep finds no broker marker and sends every marked step again: not now.
    assert run_hive("maintenance", "recover", env=env).returncode == 0
    run = Client().submit("deferred", {"times": 1, "countdown_s": 20})
    wait_until(
        lambda: (
            db.scalar("SELECT deferrals FROM step_runs WHERE run_id = :id", id=str(run.id)) == 1
        ),
        30,
        "the step to be deferred once",
    )
    due = db.scalar(
        "SELECT extract(epoch FROM enqueued_at - now()) FROM step_runs WHERE run_id = :id",
        id=str(run.id),
    )
    assert due > 15, "the mark is when the message falls due"

    recover = run_hive("maintenance", "recover", env=env)
    assert recover.returncode == 0, recover.stderr
    assert json.loads(recover.stdout)["redispatched_steps"] == 0
    assert db.scalar("SELECT resends FROM step_runs WHERE run_id = :id", id=str(run.id)) == 0
