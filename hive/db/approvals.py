"""Approvals: steps held for a person's decision, and the decisions.

A step is held when the dispatcher would send it and it needs an approval not yet given
(:func:`hold`), or when the input guard escalates a running attempt (:func:`escalate`):
either way it is ``awaiting_approval``, with no message and no lease, and one row here
says why. Deciding is a compare-and-set on the row's ``pending`` status under the run's
lock (:func:`lock_for_decision`), so of two people deciding at once exactly one does.
Every statement runs in the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.db.models import Json
from hive.db.usage import stored as stored_usage
from hive.statuses import ApprovalStatus, StepStatus, UncountedOutcome

# A step needs a person when its option says so and no approval of it stands (a retry or
# a replay after an approval goes on without asking again). Never NULL: marks negate it.
NEEDS_APPROVAL = """
    coalesce(s.options->>'approval', '') = 'required'
    AND NOT EXISTS (SELECT 1 FROM approvals a
                     WHERE a.run_id = s.run_id AND a.step_id = s.step_id
                       AND a.status = 'approved')
"""

_HOLD = text(
    f"""
    UPDATE step_runs s SET status = :awaiting, enqueued_at = NULL, publish_by = NULL
      FROM runs r
     WHERE s.run_id = :run_id AND s.step_id = ANY(:ids)
       AND s.status = :pending AND s.pending_needs = 0 AND s.enqueued_at IS NULL
       AND {NEEDS_APPROVAL}
       AND r.id = s.run_id AND r.status IN ('queued', 'running')
    RETURNING s.step_id, s.input_template, s.inputs_from, s.options
    """
).bindparams(bindparam("ids", type_=ARRAY(Text)))


@dataclass(frozen=True)
class HeldStep:
    step_id: str
    input_template: Any
    inputs_from: list[str]
    options: Any


def hold(conn: Connection, run_id: uuid.UUID, step_ids: list[str]) -> list[HeldStep]:
    """Of ``step_ids``, hold those ready, unsent and needing an approval (compare-and-set on
    "pending, not sent"); returns them. The caller opens each one's request."""
    params = {"run_id": run_id, "ids": step_ids, "awaiting": StepStatus.AWAITING_APPROVAL,
              "pending": StepStatus.PENDING}  # fmt: skip
    return [
        HeldStep(r.step_id, r.input_template, list(r.inputs_from), r.options)
        for r in conn.execute(_HOLD, params)
    ]


# The attempt is given back (the step was not run): its next message is the same attempt.
# What it used before it was held (an llm call paid for, then a breaker open on the next)
# is kept on a step_attempts row of its own, as a failed attempt's is.
_ESCALATE = text(
    """
    WITH held AS (
        SELECT run_id, step_id, attempt, worker, started_at FROM step_runs
         WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
           AND status = :running
           FOR UPDATE
    ), escalated AS (
        UPDATE step_runs s
           SET status = :awaiting, attempt = s.attempt - 1, started_at = NULL,
               lease_until = NULL, worker = NULL, task_id = NULL, enqueued_at = NULL,
               publish_by = NULL
          FROM held h
         WHERE s.run_id = h.run_id AND s.step_id = h.step_id
        RETURNING s.options
    ), used AS (
        INSERT INTO step_attempts (run_id, step_id, attempt, outcome, worker, started_at, usage)
        SELECT run_id, step_id, attempt, :escalated, worker, started_at, :usage
          FROM held WHERE CAST(:usage AS jsonb) IS NOT NULL
    )
    SELECT options FROM escalated
    """
).bindparams(bindparam("usage", type_=Json))


def escalate(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    usage: dict[str, float] | None = None,
) -> Any | None:
    """Hold the step that ``attempt`` is running for a decision, without counting the attempt;
    what it used (``usage``) is recorded with it. Returns the step's options, or None when
    the attempt no longer owns the step."""
    params = {"run_id": run_id, "step_id": step_id, "attempt": attempt,
              "awaiting": StepStatus.AWAITING_APPROVAL, "running": StepStatus.RUNNING,
              "escalated": UncountedOutcome.ESCALATED, "usage": stored_usage(usage)}  # fmt: skip
    row = conn.execute(_ESCALATE, params).first()
    return None if row is None else row.options


_OPEN = text(
    """
    INSERT INTO approvals (run_id, step_id, source, reason, input, status, requested_at,
                           timeout_at, timeout_action)
    VALUES (:run_id, :step_id, :source, :reason, :input, :pending, now(),
            now() + make_interval(secs => :timeout_s), :timeout_action)
    ON CONFLICT (run_id, step_id) DO UPDATE
       SET source = EXCLUDED.source, reason = EXCLUDED.reason, input = EXCLUDED.input,
           status = EXCLUDED.status, requested_at = EXCLUDED.requested_at,
           timeout_at = EXCLUDED.timeout_at, timeout_action = EXCLUDED.timeout_action,
           decided_at = NULL, decided_by = NULL, decision_reason = NULL, input_edited = false
    RETURNING requested_at, timeout_at
    """
).bindparams(bindparam("input", type_=Json))


def open_request(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    *,
    source: str,
    reason: str,
    step_input: Any,
    timeout_s: float | None,
    timeout_action: str,
) -> datetime | None:
    """Record the held step's request (a step asking again replaces its earlier one: the
    history is in the events). Returns when it times out, if it does."""
    params = {"run_id": run_id, "step_id": step_id, "source": source, "reason": reason,
              "input": step_input, "pending": ApprovalStatus.PENDING, "timeout_s": timeout_s,
              "timeout_action": timeout_action if timeout_s is not None else None}  # fmt: skip
    row = conn.execute(_OPEN, params).one()
    timeout_at: datetime | None = row.timeout_at
    return timeout_at


# The run's row first, as stop() takes it: a decision and a cancellation never wait on each
# other's locks in opposite orders. Then the approval's, which the loser of a race waits
# for and then reads as decided.
_LOCK = text(
    """
    SELECT a.status, a.decided_by, a.decided_at, a.source, a.timeout_at, a.timeout_action,
           s.status AS step_status, s.agent, s.attempt, s.input_template, r.priority,
           r.pipeline, r.tenant, r.deadline_at, r.deadline_at <= now() AS past_deadline
      FROM runs r
      JOIN approvals a ON a.run_id = r.id AND a.step_id = :step_id
      JOIN step_runs s ON s.run_id = r.id AND s.step_id = :step_id
     WHERE r.id = :run_id AND (CAST(:tenant AS text) IS NULL OR r.tenant = :tenant)
       FOR NO KEY UPDATE OF r, a, s
    """
)


@dataclass(frozen=True)
class DecisionTarget:
    """An approval as its decider found it, locked."""

    status: str
    decided_by: str | None
    decided_at: datetime | None
    source: str
    timeout_at: datetime | None
    timeout_action: str | None
    step_status: str
    agent: str
    attempt: int
    input_template: Any
    priority: str
    pipeline: str
    tenant: str | None
    deadline_at: datetime | None
    past_deadline: bool
    """The run's deadline has passed (by PostgreSQL's clock): it is expiring, whether or
    not the sweep has ended it yet."""


def lock_for_decision(
    conn: Connection, run_id: uuid.UUID, step_id: str, *, tenant: str | None
) -> DecisionTarget | None:
    """The step's approval, locked with its run and step; None when there is none (for
    ``tenant``, when that tenant's run has none)."""
    params = {"run_id": run_id, "step_id": step_id, "tenant": tenant}
    row = conn.execute(_LOCK, params).first()
    if row is None:
        return None
    return DecisionTarget(
        status=row.status, decided_by=row.decided_by, decided_at=row.decided_at,
        source=row.source, timeout_at=row.timeout_at, timeout_action=row.timeout_action,
        step_status=row.step_status, agent=row.agent, attempt=row.attempt,
        input_template=row.input_template, priority=row.priority, pipeline=row.pipeline,
        tenant=row.tenant, deadline_at=row.deadline_at, past_deadline=bool(row.past_deadline),
    )  # fmt: skip


_DECIDE = text(
    """
    UPDATE approvals
       SET status = :status, decided_at = now(), decided_by = :by,
           decision_reason = :reason, input_edited = :edited
     WHERE run_id = :run_id AND step_id = :step_id AND status = :pending
    RETURNING decided_at
    """
)

# Approved: back to pending for the dispatcher (an edited input replaces the template).
_RELEASE = text(
    """
    UPDATE step_runs SET status = :pending, input_template = coalesce(:template, input_template)
     WHERE run_id = :run_id AND step_id = :step_id AND status = :awaiting
    RETURNING step_id
    """
).bindparams(bindparam("template", type_=Json))

# Rejected: failed for good, as a step that never started.
_FAIL = text(
    """
    UPDATE step_runs SET status = :failed, error = :error, finished_at = now()
     WHERE run_id = :run_id AND step_id = :step_id AND status = :awaiting
    RETURNING step_id
    """
).bindparams(bindparam("error", type_=Json))


def decide(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    *,
    approved: bool,
    by: str,
    reason: str | None = None,
    template: Any = None,
    error: dict[str, Any] | None = None,
) -> datetime | None:
    """Decide a pending approval locked by :func:`lock_for_decision`: approved, the step is
    pending again (its template replaced by ``template`` if given); rejected, it is failed
    with ``error``. Returns when it was decided; None when it was not pending."""
    status = ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED
    params: dict[str, Any] = {
        "run_id": run_id, "step_id": step_id, "status": status, "by": by, "reason": reason,
        "edited": template is not None, "pending": ApprovalStatus.PENDING,
    }  # fmt: skip
    row = conn.execute(_DECIDE, params).first()
    if row is None:
        return None
    step = {"run_id": run_id, "step_id": step_id, "awaiting": StepStatus.AWAITING_APPROVAL}
    if approved:
        conn.execute(_RELEASE, {**step, "pending": StepStatus.PENDING, "template": template})
    else:
        conn.execute(_FAIL, {**step, "failed": StepStatus.FAILED, "error": error})
    decided_at: datetime = row.decided_at
    return decided_at


_CLOSE_FOR_RUN = text(
    """
    UPDATE approvals SET status = :cancelled, decided_at = now(), decided_by = :by,
                         decision_reason = :reason
     WHERE run_id = :run_id AND status = :pending
    RETURNING step_id
    """
)


def close_for_run(conn: Connection, run_id: uuid.UUID, *, by: str, reason: str) -> list[str]:
    """The run was stopped: its pending approvals are cancelled. Returns their steps."""
    params = {"run_id": run_id, "by": by, "reason": reason,
              "cancelled": ApprovalStatus.CANCELLED, "pending": ApprovalStatus.PENDING}  # fmt: skip
    return [r.step_id for r in conn.execute(_CLOSE_FOR_RUN, params)]


_GRANTED = text(
    """
    SELECT 1 FROM approvals
     WHERE run_id = :run_id AND step_id = :step_id AND status = :approved
       AND (CAST(:source AS text) IS NULL OR source = :source)
    """
)


def granted(
    conn: Connection, run_id: uuid.UUID, step_id: str, *, source: str | None = None
) -> bool:
    """Whether a person (or a timeout) approved the step; with ``source``, an approval that
    this source (``breaker``, ``input_guard``, ``required``) asked for."""
    params = {"run_id": run_id, "step_id": step_id, "approved": ApprovalStatus.APPROVED,
              "source": source}  # fmt: skip
    return conn.execute(_GRANTED, params).first() is not None


# Reads for the service layer and beat. ``tenant`` scopes each, as hive/db/runs.py's do.

_COLUMNS = """
    a.run_id, a.step_id, a.source, a.reason, a.status, a.requested_at, a.timeout_at,
    a.timeout_action, a.decided_at, a.decided_by, a.decision_reason, a.input_edited,
    s.agent, s.status AS step_status, r.pipeline, r.tenant
"""

_PENDING = text(
    f"""
    SELECT {_COLUMNS}
      FROM approvals a
      JOIN runs r ON r.id = a.run_id
      JOIN step_runs s ON s.run_id = a.run_id AND s.step_id = a.step_id
     WHERE a.status = :pending
       AND (CAST(:tenant AS text) IS NULL OR r.tenant = :tenant)
       AND (CAST(:pipeline AS text) IS NULL OR r.pipeline = :pipeline)
     ORDER BY a.requested_at
     LIMIT :limit
    """
)


def list_pending(
    conn: Connection, *, tenant: str | None, pipeline: str | None = None, limit: int = 100
) -> list[Any]:
    """Pending approvals, oldest first (``ix_approvals_pending``); no input (it may hold
    personal data: :func:`get` has it)."""
    params = {"pending": ApprovalStatus.PENDING, "tenant": tenant, "pipeline": pipeline,
              "limit": limit}  # fmt: skip
    return list(conn.execute(_PENDING, params))


_GET = text(
    f"""
    SELECT {_COLUMNS}, a.input
      FROM approvals a
      JOIN runs r ON r.id = a.run_id
      JOIN step_runs s ON s.run_id = a.run_id AND s.step_id = a.step_id
     WHERE a.run_id = :run_id AND a.step_id = :step_id
       AND (CAST(:tenant AS text) IS NULL OR r.tenant = :tenant)
    """
)


def get(conn: Connection, run_id: uuid.UUID, step_id: str, *, tenant: str | None) -> Any:
    """The step's approval, pending or decided, with its input; None if there is none."""
    return conn.execute(_GET, {"run_id": run_id, "step_id": step_id, "tenant": tenant}).first()


_HISTORY = text(
    """
    SELECT kind, detail, created_at FROM events
     WHERE run_id = :run_id AND step_id = :step_id AND kind LIKE 'approval\\_%'
     ORDER BY id
    """
)


def history(conn: Connection, run_id: uuid.UUID, step_id: str) -> list[Any]:
    """The step's approval events, oldest first: every request and decision, with who."""
    return list(conn.execute(_HISTORY, {"run_id": run_id, "step_id": step_id}))


_DUE = text(
    """
    SELECT run_id, step_id, timeout_action FROM approvals
     WHERE status = :pending AND timeout_at < now()
     ORDER BY timeout_at
     LIMIT :limit
    """
)


def due(conn: Connection, limit: int = 1000) -> list[tuple[uuid.UUID, str, str]]:
    """Pending approvals past their timeout: (run id, step id, what the timeout does)."""
    rows = conn.execute(_DUE, {"pending": ApprovalStatus.PENDING, "limit": limit})
    return [(r.run_id, r.step_id, r.timeout_action) for r in rows]
