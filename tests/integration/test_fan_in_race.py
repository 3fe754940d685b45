"""Fan-in under racing parents: the two parents of a join finishing at the same instant
send the join once; one failing for good while the other succeeds skips the join and closes
the run once. Real PostgreSQL and Redis; each parent's outcome is recorded by the farm's own
functions from a thread of its own, the two released together."""

from __future__ import annotations

import ast
import json
import uuid
from functools import partial

import redis

from hive import service
from hive.db import claims
from hive.db.retrying import on_direct_cursor
from hive.settings import get_settings
from hive.statuses import AttemptOutcome
from hive.tasks import outcomes
from tests.support import db
from tests.support.racing import released_together


def _claim(run_id: uuid.UUID, step_id: str) -> None:
    claimed = on_direct_cursor(
        lambda cursor: claims.claim(
            cursor, run_id, step_id, 1, worker="test", task_id=None, grace_s=60.0
        )
    )
    assert claimed is not None, f"{step_id} could not be claimed"


def _both_parents_running() -> uuid.UUID:
    """A run of ``parallel`` whose ``start`` succeeded and whose ``left`` and ``right``
    are both running (claimed here, no worker)."""
    run_id = service.submit(get_settings(), service.OPERATOR, "parallel", {"text": "x"}).run_id
    _claim(run_id, "start")
    assert outcomes.record_success(run_id, "start", 1, {"text": "x"}, {"text": "x"})
    _claim(run_id, "left")
    _claim(run_id, "right")
    return run_id


def _both_succeed(run_id: uuid.UUID, racer: int) -> bool:
    step_id = ("left", "right")[racer]
    return outcomes.record_success(run_id, step_id, 1, {"seconds": 1.0}, {"slept": 1.0})


def _left_fails_right_succeeds(run_id: uuid.UUID, racer: int) -> object:
    if racer == 0:
        error = {"type": "PermanentError", "message": "no", "traceback": None}
        return outcomes.record_failed_attempt(run_id, "left", 1, error, retryable=False)
    return outcomes.record_success(run_id, "right", 1, {"seconds": 1.0}, {"slept": 1.0})


def _messages_for(client: redis.Redis, run_id: uuid.UUID, step_id: str) -> int:
    """Step messages for ``step_id`` of the run waiting in the queues (any priority)."""
    found = 0
    for key in client.scan_iter(match="hive.default*"):
        if client.type(key) != b"list":
            continue
        for raw in client.lrange(key, 0, -1):
            argsrepr = json.loads(raw).get("headers", {}).get("argsrepr") or "()"
            args = ast.literal_eval(argsrepr)
            found += args[:2] == (str(run_id), step_id)
    return found


def test_two_parents_succeeding_at_the_same_instant_send_their_join_once(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    for _ in range(5):
        run_id = _both_parents_running()

        recorded = released_together("step_runs", 2, partial(_both_succeed, run_id))

        assert recorded == [True, True]
        assert _messages_for(redis_db[0], run_id, "join") == 1
        join = db.steps_of(run_id)["join"]
        assert (join.status, join.pending_needs) == ("pending", 0)
        assert join.enqueued_at is not None
        assert db.scalar("SELECT steps_remaining FROM runs WHERE id = :id", id=str(run_id)) == 1


def test_a_parent_failing_for_good_as_the_other_succeeds_skips_the_join_and_fails_the_run_once(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    for _ in range(5):
        run_id = _both_parents_running()

        outcome = released_together("step_runs", 2, partial(_left_fails_right_succeeds, run_id))

        assert outcome == [AttemptOutcome.FAILED, True]
        steps = db.steps_of(run_id)
        assert {s: r.status for s, r in steps.items()} == {
            "start": "succeeded", "left": "failed", "right": "succeeded", "join": "skipped",
        }  # fmt: skip
        assert _messages_for(redis_db[0], run_id, "join") == 0
        run = db.rows("SELECT * FROM runs WHERE id = :id", id=str(run_id))[0]
        assert (run.status, run.steps_remaining, run.failed_step) == ("failed", 0, "left")
        assert run.finished_at is not None
        closes = db.scalar("SELECT count(*) FROM dead_letters WHERE run_id = :id", id=str(run_id))
        assert closes == 1
