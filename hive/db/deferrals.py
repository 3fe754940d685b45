"""Deferred steps: a running attempt given back because the step may not run now (a rate or
concurrency limit is reached, a breaker is open), without counting as a try.

A deferral is a compare-and-set on "running, this attempt", like every transition. The
step goes back to ``pending`` keeping its attempt number, so the dispatcher's next message
is for the attempt after it: a copy of the deferred message, or a worker that lost the
deferred attempt, finds nothing to claim or end. ``attempt_base`` moves up with it, so
the deferral uses up no retry (retries count ``attempt - attempt_base``), and
``deferrals`` counts them, so the step's real attempts are ``attempt - deferrals``.

A step waits at most ``max_wait_s`` (``HIVE_DEFER_MAX_S``) deferred in a row, counted from
``deferred_since``, which the end of a real attempt clears
(:func:`hive.db.failures.end_attempt`): past it the deferral is refused, and the caller
fails the attempt for good instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text

from hive.db import events as event_log
from hive.db.models import Json
from hive.db.usage import stored as stored_usage
from hive.statuses import UncountedOutcome

# What the attempt used before it was deferred (an llm call paid for, then a limit on the
# next one) is kept on a step_attempts row of its own, as a failed attempt's is.
_DEFER = text(
    """
    WITH deferred AS (
        UPDATE step_runs
           SET status = 'pending', attempt_base = attempt_base + 1, deferrals = deferrals + 1,
               deferred_since = coalesce(deferred_since, now()),
               lease_until = NULL, enqueued_at = NULL, task_id = NULL
         WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
           AND status = 'running'
           AND (deferred_since IS NULL
                OR deferred_since > now() - make_interval(secs => :max_wait_s))
        RETURNING run_id, step_id, attempt, worker, started_at, deferrals, deferred_since
    ), used AS (
        INSERT INTO step_attempts (run_id, step_id, attempt, outcome, worker, started_at, usage)
        SELECT run_id, step_id, attempt, :deferred, worker, started_at, :usage
          FROM deferred WHERE CAST(:usage AS jsonb) IS NOT NULL
    )
    SELECT deferrals, extract(epoch FROM now() - deferred_since)::float8 AS waited_s
      FROM deferred
    """
).bindparams(bindparam("usage", type_=Json))


@dataclass(frozen=True)
class Deferral:
    deferrals: int
    """The step's deferrals so far, this one included."""
    waited_s: float
    """Seconds since the step's current run of deferrals began."""

    @property
    def worth_an_event(self) -> bool:
        """Recorded as an event at the 1st, 2nd, 4th, 8th... deferral: a step that waits
        an hour in one-second steps writes a dozen events, not thousands."""
        return self.deferrals & (self.deferrals - 1) == 0


def defer(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    *,
    max_wait_s: float,
    usage: dict[str, float] | None = None,
) -> Deferral | None:
    """Give ``attempt`` back: the step is pending again, ready for the dispatcher, and what
    the attempt used (``usage``) is recorded with it. None when the attempt no longer owns
    the step, or the step has waited ``max_wait_s`` already."""
    params = {"run_id": run_id, "step_id": step_id, "attempt": attempt, "max_wait_s": max_wait_s,
              "usage": stored_usage(usage), "deferred": UncountedOutcome.DEFERRED}  # fmt: skip
    row = conn.execute(_DEFER, params).first()
    return None if row is None else Deferral(int(row.deferrals), float(row.waited_s))


def record_event(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    deferral: Deferral,
    *,
    reason: str,
    kind: str,
    countdown_s: float,
) -> None:
    """The ``deferred`` event, when this deferral is worth one (:attr:`Deferral.worth_an_event`)."""
    if not deferral.worth_an_event:
        return
    detail: dict[str, Any] = {
        "reason": reason,
        "kind": kind,
        "countdown_s": round(countdown_s, 3),
        "deferrals": deferral.deferrals,
        "waited_s": round(deferral.waited_s, 3),
    }
    event_log.record(conn, "deferred", detail, run_id=run_id, step_id=step_id)
