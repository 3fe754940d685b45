"""Stop a run: cancelled by a user, or expired past its deadline."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Connection, bindparam, text

from hive.db.models import Json
from hive.db.retrying import in_transaction
from hive.tasks.app import app

logger = logging.getLogger(__name__)

_STOP_RUN = text(
    """
    UPDATE runs SET status = :status, finished_at = now(), error = coalesce(error, :error)
     WHERE id = :run_id AND status IN ('queued', 'running')
    RETURNING id
    """
).bindparams(bindparam("error", type_=Json))

_STOP_STEPS = text(
    """
    WITH before AS (
        SELECT step_id, status, task_id FROM step_runs
         WHERE run_id = :run_id AND status IN ('pending', 'running') FOR UPDATE
    )
    UPDATE step_runs s
       SET status = 'cancelled', finished_at = now(), enqueued_at = NULL, lease_until = NULL
      FROM before b
     WHERE s.run_id = :run_id AND s.step_id = b.step_id
    RETURNING b.status AS was, b.task_id
    """
)


def stop_run(run_id: uuid.UUID, *, status: str = "cancelled", reason: str = "") -> bool:
    """End an active run as ``cancelled`` or ``expired``: no new step of it starts (claims
    check the run's status), unfinished steps end ``cancelled``, running ones are revoked.
    False when the run was not active."""

    def txn(conn: Connection) -> list[str] | None:
        error = {"type": status, "message": reason or f"run {status}"}
        if conn.execute(_STOP_RUN, {"run_id": run_id, "status": status, "error": error}).first():
            rows = conn.execute(_STOP_STEPS, {"run_id": run_id}).all()
            return [r.task_id for r in rows if r.was == "running" and r.task_id]
        return None

    running = in_transaction(txn)
    if running is None:
        return False
    if running:
        # SIGUSR1 raises SoftTimeLimitExceeded inside the agent: the pool child survives,
        # and the attempt's late finish is refused by the compare-and-set.
        try:
            app.control.revoke(running, terminate=True, signal="SIGUSR1")
        except Exception as exc:  # broker trouble: agents still see ctx.is_cancelled()
            logger.warning("could not revoke %d running steps: %s", len(running), exc)
    logger.info("run %s %s; %d running steps revoked", run_id, status, len(running))
    return True
