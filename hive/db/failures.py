"""Failed attempts: what decides their fate, recording them, and skipping what depended on
a step that failed for good. Each runs inside the caller's transaction
(:func:`~hive.db.retrying.in_transaction`): the failure, the retry's dispatch or the run's
count-down commit together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text

from hive.agents.base import AgentOptions
from hive.db.models import Json
from hive.db.options import step_options
from hive.db.usage import stored as stored_usage
from hive.statuses import AttemptOutcome, StepStatus

_FAILURE_POLICY = text(
    """
    SELECT s.options, s.attempt_base, s.agent, s.dependents, s.deferrals, r.priority, r.pipeline
      FROM step_runs s JOIN runs r ON r.id = s.run_id
     WHERE s.run_id = :run_id AND s.step_id = :step_id
       FOR UPDATE OF s
    """
)


@dataclass(frozen=True)
class FailurePolicy:
    options: AgentOptions
    attempt_base: int
    """Attempts that do not count against ``max_retries``: those before the last replay,
    and every deferral (:mod:`hive.db.deferrals`)."""
    agent: str
    priority: str
    pipeline: str
    deferrals: int = 0
    """Attempt numbers the step's deferrals used: its real attempts are ``attempt - deferrals``."""

    def retries_left(self, attempt: int) -> bool:
        """Whether ``attempt`` failing leaves a retry (``max_retries`` past the base)."""
        return attempt - self.attempt_base <= self.options.max_retries


def failure_policy(conn: Connection, run_id: uuid.UUID, step_id: str) -> FailurePolicy | None:
    """What decides a failed attempt's fate (locks the step row)."""
    row = conn.execute(_FAILURE_POLICY, {"run_id": run_id, "step_id": step_id}).first()
    if row is None:
        return None
    return FailurePolicy(
        step_options(row.options),
        row.attempt_base,
        row.agent,
        row.priority,
        row.pipeline,
        row.deferrals,
    )


_END_ATTEMPT = text(
    """
    WITH ended AS (
        UPDATE step_runs
           SET status = :status, error = :error, input = coalesce(:input, input),
               lease_until = NULL,
               finished_at = CASE WHEN :status = 'pending' THEN NULL ELSE now() END,
               enqueued_at = NULL, task_id = NULL, deferred_since = NULL
         WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
           AND status = 'running'
        RETURNING run_id, step_id, attempt, worker, started_at
    )
    INSERT INTO step_attempts (run_id, step_id, attempt, outcome, error, worker, started_at,
                               usage)
    SELECT run_id, step_id, attempt, :outcome, :error, worker, started_at, :usage FROM ended
    RETURNING id
    """
).bindparams(
    bindparam("error", type_=Json), bindparam("input", type_=Json), bindparam("usage", type_=Json)
)


def end_attempt(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    *,
    error: dict[str, Any],
    step_input: Any,
    retry: bool,
    usage: dict[str, float] | None = None,
) -> bool:
    """Record a failed attempt, with what it used (``usage``: a failed call still cost its
    tokens). With ``retry`` the step goes back to pending, ready for the dispatcher;
    otherwise it fails for good. False when the attempt no longer owns the step."""
    row = conn.execute(
        _END_ATTEMPT,
        {
            "run_id": run_id,
            "step_id": step_id,
            "attempt": attempt,
            "status": StepStatus.PENDING if retry else StepStatus.FAILED,
            "outcome": AttemptOutcome.RETRIED if retry else AttemptOutcome.FAILED,
            "error": error,
            "input": step_input,
            "usage": stored_usage(usage),
        },
    ).first()
    return row is not None


_DESCENDANTS = text(
    """
    WITH RECURSIVE down(step_id) AS (
        SELECT unnest(dependents) FROM step_runs WHERE run_id = :run_id AND step_id = :step_id
        UNION
        SELECT unnest(s.dependents) FROM step_runs s JOIN down d
            ON s.run_id = :run_id AND s.step_id = d.step_id
    )
    UPDATE step_runs s SET status = 'skipped', enqueued_at = NULL, finished_at = now()
     WHERE s.run_id = :run_id AND s.step_id = ANY(ARRAY(SELECT step_id FROM down))
       AND s.status = 'pending'
    RETURNING s.step_id
    """
)


def skip_descendants(conn: Connection, run_id: uuid.UUID, step_id: str) -> list[str]:
    """Mark every pending step downstream of ``step_id`` skipped; returns their ids."""
    return [r.step_id for r in conn.execute(_DESCENDANTS, {"run_id": run_id, "step_id": step_id})]
