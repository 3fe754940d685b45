"""Claims and successes: the two statements of every step's path.

A claim takes the step for one attempt (compare-and-set on "pending, this attempt");
a success records it, releases the dependents and counts the run down, in one statement
that can also close the run. Both are prepared and sent on the direct cursor (see
:mod:`hive.db`); :func:`succeed` runs the same statement inside a caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from hive.agents.base import AgentOptions
from hive.db.direct import DirectCursor
from hive.db.models import Json, step_runs
from hive.db.options import DEFAULT_TIMEOUT_S, step_options
from hive.db.prepared import PreparedStatement
from hive.db.usage import stored as stored_usage
from hive.statuses import StepStatus

# ``waited_s``: since the step's message went out, or since its last need finished (a
# chain marks its later steps sent with the first; their messages go out one by one), read
# before the update clears the mark. A root step (no needs, no inputs from others) skips
# the reads of other steps' rows: the subqueries run only when their CASE branch is taken.
# The run's columns come from the row the update joined (read once); the run is marked
# running only by the claim that finds it queued (a run's later claims read it no more).
_CLAIM = text(
    """
    WITH before AS (
        SELECT enqueued_at FROM step_runs WHERE run_id = :run_id AND step_id = :step_id
    ), claimed AS (
        UPDATE step_runs s
           SET status = 'running', attempt = :attempt, started_at = now(), finished_at = NULL,
               enqueued_at = NULL, publish_by = NULL, worker = :worker, task_id = :task_id,
               lease_until = now() + make_interval(
                   secs => coalesce((s.options->>'timeout')::float, :default_timeout) + :grace)
          FROM runs r
         WHERE s.run_id = :run_id AND s.step_id = :step_id
           AND s.status = 'pending' AND s.attempt = :attempt - 1 AND s.pending_needs = 0
           AND r.id = s.run_id AND r.status IN ('queued', 'running')
           AND (r.deadline_at IS NULL OR r.deadline_at > now())
        RETURNING s.agent, s.input_template, s.needs, s.inputs_from, s.options, s.dependents,
                  r.input, r.tenant, r.pipeline, r.trace_id, r.steps_remaining,
                  CASE WHEN r.steps_remaining = 1 THEN r.output_spec END AS output_spec,
                  r.status AS run_status
    ), started AS (
        UPDATE runs SET status = 'running', started_at = now()
         WHERE EXISTS (SELECT 1 FROM claimed WHERE run_status = 'queued')
           AND id = :run_id AND status = 'queued'
    )
    SELECT c.agent, c.input_template, c.needs, c.options, c.dependents, c.input, c.tenant,
           c.pipeline, c.trace_id, c.steps_remaining, c.output_spec,
           CASE WHEN cardinality(c.inputs_from) = 0 THEN '{}'::jsonb
                ELSE (SELECT coalesce(jsonb_object_agg(u.step_id, u.output), '{}'::jsonb)
                        FROM step_runs u
                       WHERE u.run_id = :run_id AND u.step_id = ANY(c.inputs_from))
           END AS upstream,
           extract(epoch FROM now() - greatest(
               (SELECT enqueued_at FROM before),
               CASE WHEN cardinality(c.needs) > 0 THEN
                   (SELECT max(n.finished_at) FROM step_runs n
                     WHERE n.run_id = :run_id AND n.step_id = ANY(c.needs)) END))::float8
               AS waited_s
      FROM claimed c
    """
)


_CLAIM_PREPARED = PreparedStatement(
    "hive_claim",
    _CLAIM,
    {"run_id": "uuid", "step_id": "text", "attempt": "int", "worker": "text",
     "task_id": "text", "grace": "float8", "default_timeout": "float8"},
)  # fmt: skip


@dataclass(frozen=True)
class ClaimedStep:
    agent: str
    input_template: Any
    needs: list[str]
    options: AgentOptions
    dependents: list[str]
    run_input: Any
    tenant: str | None
    pipeline: str
    trace_id: str | None
    """The run's W3C trace id (None for a run stored before it had one)."""
    steps_remaining: int
    """The run's unfinished steps when this one was claimed, this one included."""
    output_spec: dict[str, Any] | None
    """How the run's output is built; only when this step was the last one left."""
    upstream: dict[str, Any]
    waited_s: float | None
    """Seconds since the message was sent or the step's last need finished; None if
    neither is known (a mark already cleared)."""


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
            "default_timeout": DEFAULT_TIMEOUT_S,
        },
        wait_for_flush=wait_for_flush,
    )
    if row is None:
        return None
    return ClaimedStep(
        agent=row["agent"],
        input_template=row["input_template"],
        needs=list(row["needs"]),
        options=step_options(row["options"]),
        dependents=list(row["dependents"]),
        run_input=row["input"],
        tenant=row["tenant"],
        pipeline=row["pipeline"],
        trace_id=row["trace_id"],
        steps_remaining=row["steps_remaining"],
        output_spec=row["output_spec"],
        upstream=row["upstream"],
        waited_s=row["waited_s"],
    )


_SUCCEED = text(
    """
    WITH done AS (
        UPDATE step_runs
           SET status = 'succeeded', output = :output, input = :input, error = NULL,
               usage = :usage, finished_at = now(), lease_until = NULL
         WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
           AND status = 'running'
        RETURNING dependents
    ), released AS (
        -- The first condition is checked once, before any row is read (a step without
        -- dependents reads none).
        UPDATE step_runs d SET pending_needs = d.pending_needs - 1
         WHERE (SELECT cardinality(dependents) FROM done) > 0
           AND d.run_id = :run_id AND d.step_id = ANY((SELECT dependents FROM done)::text[])
           AND d.status = 'pending'
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
        RETURNING steps_remaining, failed_step, priority, pipeline,
                  extract(epoch FROM now() - created_at)::float8 AS age_s,
                  steps_remaining = 0 AND status = 'succeeded' AS closed,
                  CASE WHEN steps_remaining = 0 THEN output_spec END AS output_spec,
                  CASE WHEN steps_remaining = 0 THEN input END AS run_input
    )
    SELECT c.steps_remaining, c.failed_step, c.priority, c.closed, c.output_spec, c.run_input,
           c.pipeline, c.age_s,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(step_id, enqueued)), '[]'::jsonb)
              FROM released WHERE pending_needs = 0) AS ready
      FROM counted c
    """
).bindparams(
    bindparam("output", type_=Json), bindparam("input", type_=Json), bindparam("usage", type_=Json)
)


_SUCCEED_PREPARED = PreparedStatement(
    "hive_succeed",
    _SUCCEED,
    {"run_id": "uuid", "step_id": "text", "attempt": "int", "output": "jsonb", "input": "jsonb",
     "usage": "jsonb", "close": "bool", "run_output": "jsonb"},
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
    pipeline: str
    age_s: float
    """Seconds since the run was submitted."""


def succeed(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    step_input: Any,
    output: Any,
    usage: dict[str, float] | None = None,
) -> Succeeded | None:
    """Record the attempt's success (with what it used, ``usage``), release its dependents
    and count the run down, in one statement on the caller's transaction. None when the
    attempt no longer owns the step (a late finish)."""
    params = _succeed_params(run_id, step_id, attempt, step_input, output, None, usage)
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
    usage: dict[str, float] | None = None,
) -> Succeeded | None:
    """:func:`succeed` as a transaction of its own. With ``close``, if this was the run's
    last step and no step failed, the run is closed too, with ``close.output``."""
    params = _succeed_params(run_id, step_id, attempt, step_input, output, close, usage)
    row = cursor.fetch_one(_SUCCEED_PREPARED, params)
    return None if row is None else _succeeded(row)


def _succeed_params(
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    step_input: Any,
    output: Any,
    close: RunClose | None,
    usage: dict[str, float] | None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step_id,
        "attempt": attempt,
        "output": output,
        "input": step_input,
        "usage": stored_usage(usage),
        "close": close is not None,
        "run_output": None if close is None else close.output,
    }


def _succeeded(row: Mapping[Any, Any]) -> Succeeded:
    return Succeeded(
        ready=[(str(step), bool(sent)) for step, sent in row["ready"]],
        remaining=row["steps_remaining"],
        failed_step=row["failed_step"],
        priority=row["priority"],
        closed=bool(row["closed"]),
        output_spec=row["output_spec"],
        run_input=row["run_input"],
        pipeline=row["pipeline"],
        age_s=row["age_s"],
    )


def succeeded_at(conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int) -> bool:
    """Whether the step's recorded success is ``attempt``'s (a commit whose answer was lost,
    or whose process died before its chain went on)."""
    row = conn.execute(
        select(step_runs.c.status, step_runs.c.attempt).where(
            step_runs.c.run_id == run_id, step_runs.c.step_id == step_id
        )
    ).first()
    return row is not None and row.status == StepStatus.SUCCEEDED and row.attempt == attempt
