"""An attempt taken back from a worker that is alive but slow (its lease ran out, its worker
was marked lost) may still finish. After its run failed and was replayed, that old attempt's
success or failure is refused wherever it lands: before the replay's attempt is claimed,
while it runs, and after it succeeded. Real PostgreSQL and Redis; no worker: attempts are
claimed and ended by the farm's own functions."""

from __future__ import annotations

import uuid

from hive import service
from hive.db import claims
from hive.db.retrying import on_direct_cursor
from hive.settings import get_settings
from hive.statuses import AttemptOutcome
from hive.tasks import outcomes
from hive.tasks.replay import replay
from tests.support import db

_LEASE_EXPIRED = {"type": "lease_expired", "message": "no word", "traceback": None}


def _claim(run_id: uuid.UUID, step_id: str, attempt: int) -> bool:
    return (
        on_direct_cursor(
            lambda cursor: claims.claim(
                cursor, run_id, step_id, attempt, worker="test", task_id=None, grace_s=60.0
            )
        )
        is not None
    )


def _failed_run_with_a_stale_attempt() -> uuid.UUID:
    """A ``fault-dlq`` run failed at ``flaky``, whose two attempts were taken back by the
    lease sweep (their workers still running them)."""
    settings = get_settings()
    run_id = service.submit(settings, service.OPERATOR, "fault-dlq", {"times": 0}).run_id
    assert _claim(run_id, "first", 1)
    assert outcomes.record_success(run_id, "first", 1, {"text": "first"}, {"text": "first"})
    for attempt, fate in ((1, AttemptOutcome.RETRIED), (2, AttemptOutcome.FAILED)):
        assert _claim(run_id, "flaky", attempt)
        assert outcomes.record_failed_attempt(run_id, "flaky", attempt, _LEASE_EXPIRED) == fate
    assert db.run_status(run_id) == "failed"
    return run_id


def test_an_old_attempt_finishing_after_a_replay_is_refused_wherever_it_lands(
    clean_state: None,
) -> None:
    run_id = _failed_run_with_a_stale_attempt()
    stale = {"times": 0}, {"text": "stale"}

    assert replay(run_id) == ["flaky", "last"]
    # Between the replay and its attempt's claim.
    assert not outcomes.record_success(run_id, "flaky", 2, *stale)
    error = {"type": "RuntimeError", "message": "late", "traceback": None}
    assert outcomes.record_failed_attempt(run_id, "flaky", 2, error) is None
    assert _claim(run_id, "flaky", 3)
    # While the replay's attempt runs.
    assert not outcomes.record_success(run_id, "flaky", 2, *stale)
    assert not outcomes.record_success(run_id, "flaky", 1, *stale)
    assert outcomes.record_success(run_id, "flaky", 3, {"times": 0}, {"text": "fresh"})
    # After it succeeded.
    assert not outcomes.record_success(run_id, "flaky", 2, *stale)

    flaky = db.steps_of(run_id)["flaky"]
    assert (flaky.status, flaky.attempt, flaky.output) == ("succeeded", 3, {"text": "fresh"})
    assert (
        db.scalar(
            "SELECT count(*) FROM events WHERE kind = 'late_finish' AND run_id = :id",
            id=str(run_id),
        )
        >= 1
    )
