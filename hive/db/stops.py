"""Stopping a run: the run ends ``cancelled``, ``expired`` or ``budget_exceeded`` with its
unfinished steps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text

from hive.db import approvals, events
from hive.db.models import Json
from hive.db.retrying import GiveWay
from hive.statuses import RunStatus, StepStatus

# A run with no step left is closing, not running: its last step's success closes it (in a
# second transaction when it could not in its own statement), or recovery does should that
# worker die first. Stopping it then would end a run whose every step succeeded without
# its output.
_STOP_RUN = text(
    """
    UPDATE runs SET status = :status, finished_at = now(), error = coalesce(error, :error)
     WHERE id = :run_id AND status IN ('queued', 'running') AND steps_remaining > 0
    RETURNING id
    """
).bindparams(bindparam("error", type_=Json))

# The run's row is locked before its steps', the opposite of a success's and a claim's order
# (the step's row, then the run's): waiting for a step's row while holding the run's would
# deadlock with them. So the stop first locks the steps' rows it can, skipping those another
# transaction holds, and counts the unfinished ones it skipped; any, and it gives way (see
# stop). Both counts read the statement's one snapshot; a row changed by a commit since is
# skipped too, and costs a needless retry at worst. No error is raised in PostgreSQL (as
# NOWAIT would, with a line in its log each time).
_LOCK_STEPS = text(
    """
    WITH unfinished AS (
        SELECT step_id FROM step_runs
         WHERE run_id = :run_id AND status IN ('pending', 'running', 'awaiting_approval')
    ), locked AS (
        SELECT step_id FROM step_runs
         WHERE run_id = :run_id AND status IN ('pending', 'running', 'awaiting_approval')
           FOR UPDATE SKIP LOCKED
    )
    SELECT (SELECT count(*) FROM unfinished) - (SELECT count(*) FROM locked) AS held
    """
)

# A step runs in a worker whose pool can terminate it (prefork; a worker the registry does not
# know is taken for one) or not (threads, solo: their steps' waiting threads notice the
# cancellation themselves, see hive.tasks.deadline).
_STOP_STEPS = text(
    """
    WITH before AS (
        SELECT step_id, status, task_id, worker FROM step_runs
         WHERE run_id = :run_id AND status IN ('pending', 'running', 'awaiting_approval')
           FOR UPDATE
    )
    UPDATE step_runs s
       SET status = CASE WHEN b.status = 'running' AND b.step_id IS DISTINCT FROM :refused
                         THEN 'cancelled' ELSE :unstarted END,
           finished_at = now(), enqueued_at = NULL, lease_until = NULL
      FROM before b
     WHERE s.run_id = :run_id AND s.step_id = b.step_id
    RETURNING b.step_id, b.status AS was, b.task_id,
              coalesce((SELECT w.pool FROM workers w WHERE w.name = b.worker), 'prefork')
                  = 'prefork' AS terminable
    """
)


@dataclass(frozen=True)
class Running:
    """A step that was running when its run stopped: its Celery task, and whether its
    worker's pool can terminate it (prefork) or not (threads, solo)."""

    task_id: str
    terminable: bool


def stop(
    conn: Connection,
    run_id: uuid.UUID,
    status: RunStatus,
    error: dict[str, Any],
    *,
    unstarted: StepStatus = StepStatus.CANCELLED,
    refused: str | None = None,
    give_way: bool = False,
) -> list[Running] | None:
    """End an active run as ``status``; its running steps end ``cancelled``, its pending and
    awaiting ones ``unstarted`` (``skipped`` when a budget stops it), and their pending
    approvals with them (an ``approval_cancelled`` event). ``refused`` is a running step
    that never started its work (the one a budget turned away): it ends ``unstarted``
    and is not returned. Returns the other steps that were running (to revoke), or None
    when the run was not active, or had no step left (it is closing with its last step's
    outcome). No step of the run can be claimed after this commits: claims check the
    run's status.

    It locks the run's row, then its unfinished steps': these must be the first locks of
    its transaction (its wait for the run's row then holds nothing). With ``give_way``,
    a step's row that another transaction holds (a success, a claim: they lock the step's
    row, then the run's) is not waited for: :class:`~hive.db.retrying.GiveWay` is raised,
    for :func:`~hive.db.retrying.in_transaction_giving_way` to roll back and run again.
    """
    if not conn.execute(_STOP_RUN, {"run_id": run_id, "status": status, "error": error}).first():
        return None
    if give_way:
        held = conn.execute(_LOCK_STEPS, {"run_id": run_id}).scalar_one()
        if held:
            raise GiveWay(f"run {run_id}: {held} step rows held")
    params = {"run_id": run_id, "unstarted": unstarted, "refused": refused}
    rows = conn.execute(_STOP_STEPS, params).all()
    reason = str(error.get("message") or status)
    for step_id in approvals.close_for_run(conn, run_id, by="hive", reason=reason):
        detail = {"by": "hive", "status": str(status), "reason": reason}
        events.record(conn, "approval_cancelled", detail, run_id=run_id, step_id=step_id)
    return [
        Running(r.task_id, bool(r.terminable))
        for r in rows
        if r.was == StepStatus.RUNNING and r.task_id and r.step_id != refused
    ]
