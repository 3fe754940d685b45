"""Dead letters: steps that failed for good, and resetting a failed run for a replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text

from hive.db.models import Json, dead_letters, runs
from hive.statuses import RunStatus


def add(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    *,
    pipeline: str,
    agent: str,
    attempts: int,
    error: dict[str, Any],
    step_input: Any,
) -> None:
    """File the step that failed for good after ``attempts``, for a replay to pick up."""
    conn.execute(
        insert(dead_letters).values(
            run_id=run_id,
            step_id=step_id,
            pipeline=pipeline,
            agent=agent,
            attempts=attempts,
            error=error,
            input=step_input,
        )
    )


def list_open(
    conn: Connection,
    *,
    tenant: str | None = None,
    pipeline: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Any]:
    """Dead letters not yet replayed, newest first; with ``tenant``, that tenant's alone."""
    query = (
        select(dead_letters)
        .where(dead_letters.c.replayed_at.is_(None))
        .order_by(dead_letters.c.created_at.desc())
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(
            dead_letters.c.run_id.in_(select(runs.c.id).where(runs.c.tenant == tenant))
        )
    if pipeline:
        query = query.where(dead_letters.c.pipeline == pipeline)
    if since:
        query = query.where(dead_letters.c.created_at >= since)
    return list(conn.execute(query))


def for_run(conn: Connection, run_id: uuid.UUID) -> list[Any]:
    return list(
        conn.execute(
            select(dead_letters)
            .where(dead_letters.c.run_id == run_id)
            .order_by(dead_letters.c.created_at)
        )
    )


def failed_runs_of(
    conn: Connection, pipeline: str, *, tenant: str | None = None
) -> list[tuple[uuid.UUID, bool]]:
    """Failed runs of ``pipeline`` (and ``tenant``, if given) that have dead letters
    waiting for a replay, oldest first, each with whether its deadline has passed."""
    query = (
        select(
            runs.c.id,
            func.coalesce(runs.c.deadline_at <= func.now(), False).label("past_deadline"),
        )
        .where(
            runs.c.pipeline == pipeline,
            runs.c.status == RunStatus.FAILED,
            runs.c.id.in_(
                select(dead_letters.c.run_id).where(dead_letters.c.replayed_at.is_(None))
            ),
        )
        .order_by(runs.c.created_at)
    )
    if tenant is not None:
        query = query.where(runs.c.tenant == tenant)
    return [(row.id, bool(row.past_deadline)) for row in conn.execute(query)]


_FAILED_STEPS = text(
    """
    SELECT s.step_id, s.agent FROM step_runs s
     WHERE s.run_id = :run_id AND s.status = 'failed' ORDER BY s.position
    """
)

_LOCK_FAILED_RUN = text(
    """
    SELECT priority, CASE WHEN deadline_at <= now() THEN deadline_at END AS deadline_passed
      FROM runs WHERE id = :run_id AND status = 'failed' FOR UPDATE
    """
)

# The transaction's now(): the deadline counts from the replay that sets it.
_SET_DEADLINE = text(
    """
    UPDATE runs SET deadline_at = now() + make_interval(secs => :deadline_s)
     WHERE id = :run_id RETURNING deadline_at
    """
)

_GET_TEMPLATE = text(
    "SELECT input_template FROM step_runs WHERE run_id = :run_id AND step_id = :step_id"
)

_SET_TEMPLATE = text(
    "UPDATE step_runs SET input_template = :template WHERE run_id = :run_id AND step_id = :step_id"
).bindparams(bindparam("template", type_=Json))

_RESET_STEPS = text(
    """
    UPDATE step_runs s
       SET status = 'pending', attempt_base = s.attempt, error = NULL, output = NULL,
           deferred_since = NULL,
           finished_at = NULL, enqueued_at = NULL, lease_until = NULL, task_id = NULL,
           pending_needs = (
               SELECT count(*) FROM unnest(s.needs) AS n(step_id)
                 JOIN step_runs u ON u.run_id = s.run_id AND u.step_id = n.step_id
                WHERE u.status <> 'succeeded')
     WHERE s.run_id = :run_id AND s.status IN ('failed', 'skipped')
    RETURNING s.step_id, s.pending_needs
    """
)

_REOPEN_RUN = text(
    """
    UPDATE runs SET status = 'running', error = NULL, failed_step = NULL, finished_at = NULL,
                    steps_remaining = steps_remaining + :n
     WHERE id = :run_id
    """
)

_CLOSE_LETTERS = text(
    "UPDATE dead_letters SET replayed_at = now() WHERE run_id = :run_id AND replayed_at IS NULL"
)


@dataclass(frozen=True)
class FailedRun:
    priority: str
    deadline_passed: datetime | None
    """When its deadline passed, if it has: no step of it can be claimed any more."""


def lock_failed_run(conn: Connection, run_id: uuid.UUID) -> FailedRun | None:
    """The run if it is ``failed`` (row locked), else None."""
    row = conn.execute(_LOCK_FAILED_RUN, {"run_id": run_id}).first()
    return None if row is None else FailedRun(row.priority, row.deadline_passed)


def set_deadline(conn: Connection, run_id: uuid.UUID, deadline_s: float) -> datetime:
    """Give the run a new deadline, ``deadline_s`` seconds from now; returns it."""
    found: datetime = conn.execute(
        _SET_DEADLINE, {"run_id": run_id, "deadline_s": float(deadline_s)}
    ).scalar_one()
    return found


def failed_steps(conn: Connection, run_id: uuid.UUID) -> list[tuple[str, str]]:
    """(step id, agent) of the run's failed steps."""
    return [(r.step_id, r.agent) for r in conn.execute(_FAILED_STEPS, {"run_id": run_id})]


def input_template(conn: Connection, run_id: uuid.UUID, step_id: str) -> Any:
    """The step's input template: its pipeline's, or the input an earlier replay gave it."""
    return conn.execute(_GET_TEMPLATE, {"run_id": run_id, "step_id": step_id}).scalar_one()


def set_input_template(conn: Connection, run_id: uuid.UUID, step_id: str, template: Any) -> None:
    conn.execute(_SET_TEMPLATE, {"run_id": run_id, "step_id": step_id, "template": template})


def reopen(conn: Connection, run_id: uuid.UUID) -> list[str]:
    """Failed and skipped steps back to pending with fresh retries, the run back to running,
    its dead letters closed. Returns the steps that are ready at once."""
    reset = conn.execute(_RESET_STEPS, {"run_id": run_id}).all()
    conn.execute(_REOPEN_RUN, {"run_id": run_id, "n": len(reset)})
    conn.execute(_CLOSE_LETTERS, {"run_id": run_id})
    return [r.step_id for r in reset if r.pending_needs == 0]
