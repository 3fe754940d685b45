"""Compare-and-set transitions of a step, each one statement (or a few) on a caller's transaction.

Every function takes a ``Connection`` inside a transaction the caller owns, so a
transition and the dispatch it causes commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.db.direct import DirectCursor, fetch_all
from hive.db.models import Json
from hive.db.prepared import PreparedStatement
from hive.settings import get_settings

_CLAIM = text(
    """
    WITH claimed AS (
        UPDATE step_runs s
           SET status = 'running', attempt = :attempt, started_at = now(), finished_at = NULL,
               enqueued_at = NULL, publish_by = NULL, worker = :worker, task_id = :task_id,
               lease_until = now() + make_interval(secs => (s.options->>'timeout')::float + :grace)
          FROM runs r
         WHERE s.run_id = :run_id AND s.step_id = :step_id
           AND s.status = 'pending' AND s.attempt = :attempt - 1 AND s.pending_needs = 0
           AND r.id = s.run_id AND r.status IN ('queued', 'running')
           AND (r.deadline_at IS NULL OR r.deadline_at > now())
        RETURNING s.agent, s.input_template, s.needs, s.inputs_from, s.options, s.dependents
    ), started AS (
        UPDATE runs SET status = 'running', started_at = now()
         WHERE id = :run_id AND status = 'queued' AND EXISTS (SELECT 1 FROM claimed)
    )
    SELECT c.agent, c.input_template, c.needs, c.options, c.dependents, r.input, r.tenant,
           r.steps_remaining, CASE WHEN r.steps_remaining = 1 THEN r.output_spec END AS output_spec,
           (SELECT coalesce(jsonb_object_agg(u.step_id, u.output), '{}'::jsonb)
              FROM step_runs u
             WHERE u.run_id = :run_id AND u.step_id = ANY(c.inputs_from)) AS upstream
      FROM claimed c JOIN runs r ON r.id = :run_id
    """
)


_CLAIM_PREPARED = PreparedStatement(
    "hive_claim",
    _CLAIM,
    {"run_id": "uuid", "step_id": "text", "attempt": "int", "worker": "text",
     "task_id": "text", "grace": "float8"},
)  # fmt: skip


@dataclass(frozen=True)
class ClaimedStep:
    agent: str
    input_template: Any
    needs: list[str]
    options: dict[str, Any]
    dependents: list[str]
    run_input: Any
    tenant: str | None
    steps_remaining: int
    """The run's unfinished steps when this one was claimed, this one included."""
    output_spec: dict[str, Any] | None
    """How the run's output is built; only when this step was the last one left."""
    upstream: dict[str, Any]


def claim(
    cursor: DirectCursor,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    *,
    worker: str,
    task_id: str | None,
    grace_s: float,
    wait_for_flush: bool = True,
) -> ClaimedStep | None:
    """Take the step for ``attempt``; None when someone else has it, it is done, not ready,
    or its run is no longer active. One statement, its own transaction; with
    ``wait_for_flush=False`` its commit does not wait for the WAL flush."""
    row = cursor.fetch_one(
        _CLAIM_PREPARED,
        {
            "run_id": run_id,
            "step_id": step_id,
            "attempt": attempt,
            "worker": worker,
            "task_id": task_id,
            "grace": grace_s,
        },
        wait_for_flush=wait_for_flush,
    )
    if row is None:
        return None
    return ClaimedStep(
        agent=row["agent"],
        input_template=row["input_template"],
        needs=list(row["needs"]),
        options=row["options"],
        dependents=list(row["dependents"]),
        run_input=row["input"],
        tenant=row["tenant"],
        steps_remaining=row["steps_remaining"],
        output_spec=row["output_spec"],
        upstream=row["upstream"],
    )


_SUCCEED = text(
    """
    WITH done AS (
        UPDATE step_runs
           SET status = 'succeeded', output = :output, input = :input, error = NULL,
               finished_at = now(), lease_until = NULL
         WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
           AND status = 'running'
        RETURNING dependents
    ), released AS (
        UPDATE step_runs d SET pending_needs = d.pending_needs - 1
          FROM done
         WHERE d.run_id = :run_id AND d.step_id = ANY(done.dependents) AND d.status = 'pending'
        RETURNING d.step_id, d.pending_needs, d.enqueued_at IS NOT NULL AS enqueued
    ), counted AS (
        -- With :close, the run's last step closes the run with :run_output, unless a step
        -- failed or the run was stopped. Column references in SET read the row as locked.
        UPDATE runs
           SET steps_remaining = steps_remaining - 1,
               status = CASE WHEN :close AND steps_remaining = 1 AND failed_step IS NULL
                              AND status IN ('queued', 'running')
                             THEN 'succeeded' ELSE status END,
               output = CASE WHEN :close AND steps_remaining = 1 AND failed_step IS NULL
                              AND status IN ('queued', 'running')
                             THEN :run_output ELSE output END,
               finished_at = CASE WHEN :close AND steps_remaining = 1 AND failed_step IS NULL
                                   AND status IN ('queued', 'running')
                                  THEN now() ELSE finished_at END
         WHERE id = :run_id AND EXISTS (SELECT 1 FROM done)
        RETURNING steps_remaining, failed_step, priority,
                  steps_remaining = 0 AND status = 'succeeded' AS closed,
                  CASE WHEN steps_remaining = 0 THEN output_spec END AS output_spec,
                  CASE WHEN steps_remaining = 0 THEN input END AS run_input
    )
    SELECT c.steps_remaining, c.failed_step, c.priority, c.closed, c.output_spec, c.run_input,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(step_id, enqueued)), '[]'::jsonb)
              FROM released WHERE pending_needs = 0) AS ready
      FROM counted c
    """
).bindparams(bindparam("output", type_=Json), bindparam("input", type_=Json))


_SUCCEED_PREPARED = PreparedStatement(
    "hive_succeed",
    _SUCCEED,
    {"run_id": "uuid", "step_id": "text", "attempt": "int", "output": "jsonb", "input": "jsonb",
     "close": "bool", "run_output": "jsonb"},
)  # fmt: skip


@dataclass(frozen=True)
class RunClose:
    """The run's output, should the step being recorded turn out to be its last."""

    output: Any


@dataclass(frozen=True)
class Succeeded:
    """What recording a success changed."""

    ready: list[tuple[str, bool]]
    """Dependents whose last need this was, each with whether it is already marked sent."""
    remaining: int
    failed_step: str | None
    priority: str
    closed: bool
    """This success also closed the run (see ``close`` of :func:`succeed_alone`)."""
    output_spec: dict[str, Any] | None
    """Set only when this was the run's last step, with ``run_input``: to build its output."""
    run_input: Any


def succeed(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    step_input: Any,
    output: Any,
) -> Succeeded | None:
    """Record the attempt's success, release its dependents and count the run down, in one
    statement on the caller's transaction. None when the attempt no longer owns the step
    (a late finish)."""
    params = _succeed_params(run_id, step_id, attempt, step_input, output, None)
    row = _SUCCEED_PREPARED.execute(conn, params).mappings().first()
    return None if row is None else _succeeded(row)


def succeed_alone(
    cursor: DirectCursor,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    step_input: Any,
    output: Any,
    close: RunClose | None = None,
) -> Succeeded | None:
    """:func:`succeed` as a transaction of its own. With ``close``, if this was the run's
    last step and no step failed, the run is closed too, with ``close.output``."""
    row = cursor.fetch_one(
        _SUCCEED_PREPARED, _succeed_params(run_id, step_id, attempt, step_input, output, close)
    )
    return None if row is None else _succeeded(row)


def _succeed_params(
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    step_input: Any,
    output: Any,
    close: RunClose | None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step_id,
        "attempt": attempt,
        "output": output,
        "input": step_input,
        "close": close is not None,
        "run_output": None if close is None else close.output,
    }


def _succeeded(row: Mapping[str, Any]) -> Succeeded:
    return Succeeded(
        ready=[(str(step), bool(sent)) for step, sent in row["ready"]],
        remaining=row["steps_remaining"],
        failed_step=row["failed_step"],
        priority=row["priority"],
        closed=bool(row["closed"]),
        output_spec=row["output_spec"],
        run_input=row["run_input"],
    )


_END_ATTEMPT = text(
    """
    WITH ended AS (
        UPDATE step_runs
           SET status = :status, error = :error, input = coalesce(:input, input),
               lease_until = NULL,
               finished_at = CASE WHEN :status = 'pending' THEN NULL ELSE now() END,
               enqueued_at = NULL, task_id = NULL
         WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
           AND status = 'running'
        RETURNING run_id, step_id, attempt, worker, started_at
    )
    INSERT INTO step_attempts (run_id, step_id, attempt, outcome, error, worker, started_at)
    SELECT run_id, step_id, attempt, :outcome, :error, worker, started_at FROM ended
    RETURNING id
    """
).bindparams(bindparam("error", type_=Json), bindparam("input", type_=Json))


def end_attempt(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    *,
    error: dict[str, Any],
    step_input: Any,
    retry: bool,
) -> bool:
    """Record a failed attempt. With ``retry`` the step goes back to pending, ready for the
    dispatcher; otherwise it fails for good. False when the attempt no longer owns the step."""
    row = conn.execute(
        _END_ATTEMPT,
        {
            "run_id": run_id,
            "step_id": step_id,
            "attempt": attempt,
            "status": "pending" if retry else "failed",
            "outcome": "retried" if retry else "failed",
            "error": error,
            "input": step_input,
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


# Rows are picked by primary key from the array of ids the CTE found: joining the CTE
# instead let the planner, which expects a handful of rows, pick a nested loop that
# compared every step of a 1000-wide fan-out with every other (345 ms for one mark).
_MARK_ENQUEUED = text(
    """
    WITH RECURSIVE chain(step_id) AS (
        SELECT step_id FROM step_runs
         WHERE run_id = :run_id AND step_id = ANY(:heads)
           AND status = 'pending' AND pending_needs = 0 AND enqueued_at IS NULL
        UNION ALL
        SELECT s.chain_next
          FROM chain c JOIN step_runs s ON s.run_id = :run_id AND s.step_id = c.step_id
         WHERE s.chain_next IS NOT NULL
    )
    UPDATE step_runs s
       SET enqueued_at = now(), publish_by = now() + make_interval(secs => :publish_grace)
     WHERE s.run_id = :run_id AND s.step_id = ANY(ARRAY(SELECT step_id FROM chain))
       AND s.status = 'pending' AND s.enqueued_at IS NULL
    RETURNING s.step_id, s.chain_next, s.attempt, s.options
    """
).bindparams(bindparam("heads", type_=ARRAY(Text)))


_MARK_PREPARED = PreparedStatement(
    "hive_mark_enqueued",
    _MARK_ENQUEUED,
    {"run_id": "uuid", "heads": "text[]", "publish_grace": "float8"},
)


@dataclass(frozen=True)
class MarkedStep:
    """A step marked sent, with what the dispatcher needs to build its message."""

    step_id: str
    chain_next: str | None
    attempt: int
    options: dict[str, Any]


def mark_enqueued(
    db: Connection | DirectCursor, run_id: uuid.UUID, heads: list[str]
) -> list[MarkedStep]:
    """Mark ready ``heads`` and the linear stretch after each as sent (compare-and-set on
    "pending, not yet sent"); only the rows returned may be published. Each mark must be
    confirmed (:func:`confirm_published`) within ``HIVE_PUBLISH_GRACE_S``."""
    params = {
        "run_id": run_id,
        "heads": heads,
        "publish_grace": get_settings().recovery.publish_grace_s,
    }
    rows = fetch_all(db, _MARK_PREPARED, params)
    return [MarkedStep(r["step_id"], r["chain_next"], r["attempt"], r["options"]) for r in rows]


_CONFIRM = PreparedStatement(
    "hive_confirm_published",
    text(
        """
        UPDATE step_runs SET publish_by = NULL
         WHERE (run_id, step_id) IN (
               -- A row locked by its claim is being taken anyway: do not wait for it.
               SELECT run_id, step_id FROM step_runs
                WHERE run_id = :run_id AND step_id = ANY(:ids) AND publish_by IS NOT NULL
                  FOR UPDATE SKIP LOCKED)
        """
    ),
    {"run_id": "uuid", "ids": "text[]"},
)


def confirm_published(cursor: DirectCursor, run_id: uuid.UUID, step_ids: list[str]) -> None:
    """The messages for these marked steps are in the broker. Not worth a WAL flush: if a
    crash undoes it, the step is sent twice and the second message is dropped by the claim."""
    cursor.execute(_CONFIRM, {"run_id": run_id, "ids": step_ids}, wait_for_flush=False)


_FAILURE_POLICY = text(
    """
    SELECT s.options, s.attempt_base, s.agent, s.dependents, r.priority, r.pipeline
      FROM step_runs s JOIN runs r ON r.id = s.run_id
     WHERE s.run_id = :run_id AND s.step_id = :step_id
       FOR UPDATE OF s
    """
)


@dataclass(frozen=True)
class FailurePolicy:
    options: dict[str, Any]
    attempt_base: int
    agent: str
    priority: str
    pipeline: str

    def retries_left(self, attempt: int) -> bool:
        return attempt - self.attempt_base <= int(self.options.get("max_retries", 0))


def failure_policy(conn: Connection, run_id: uuid.UUID, step_id: str) -> FailurePolicy | None:
    """What decides a failed attempt's fate (locks the step row)."""
    row = conn.execute(_FAILURE_POLICY, {"run_id": run_id, "step_id": step_id}).first()
    if row is None:
        return None
    return FailurePolicy(row.options, row.attempt_base, row.agent, row.priority, row.pipeline)


_UNMARK_CHAIN = text(
    """
    WITH RECURSIVE tail(step_id) AS (
        SELECT chain_next FROM step_runs
         WHERE run_id = :run_id AND step_id = :step_id AND chain_next IS NOT NULL
        UNION ALL
        SELECT s.chain_next FROM step_runs s JOIN tail t
            ON s.run_id = :run_id AND s.step_id = t.step_id
         WHERE s.chain_next IS NOT NULL
    )
    UPDATE step_runs s SET enqueued_at = NULL
     WHERE s.run_id = :run_id AND s.step_id = ANY(ARRAY(SELECT step_id FROM tail))
       AND s.status = 'pending' AND s.pending_needs > 0
    """
)


def unmark_chain_after(conn: Connection, run_id: uuid.UUID, step_id: str) -> None:
    """Forget that the stretch after ``step_id`` was sent with it: the message carrying that
    chain is gone, so the dispatcher must send it again with the step's next attempt."""
    conn.execute(_UNMARK_CHAIN, {"run_id": run_id, "step_id": step_id})


_UNMARK = text(
    """
    UPDATE step_runs SET enqueued_at = NULL
     WHERE run_id = :run_id AND step_id = ANY(:ids) AND status = 'pending'
    """
).bindparams(bindparam("ids", type_=ARRAY(Text)))


def unmark(conn: Connection, run_id: uuid.UUID, step_ids: list[str]) -> None:
    """Forget that these steps were sent (their publish failed)."""
    conn.execute(_UNMARK, {"run_id": run_id, "ids": step_ids})
