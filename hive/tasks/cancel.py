"""Stop a run: cancelled by a user, or expired past its deadline."""

from __future__ import annotations

import logging
import uuid

from hive.db import stops
from hive.db.retrying import in_transaction
from hive.statuses import RunStatus
from hive.tasks.app import app

logger = logging.getLogger(__name__)


def stop_run(
    run_id: uuid.UUID, *, status: RunStatus = RunStatus.CANCELLED, reason: str = ""
) -> bool:
    """End an active run as ``cancelled`` or ``expired``: no new step of it starts (claims
    check the run's status), unfinished steps end ``cancelled``, running ones are revoked.
    False when the run was not active."""
    error = {"type": status, "message": reason or f"run {status}"}
    running = in_transaction(lambda conn: stops.stop(conn, run_id, status, error))
    if running is None:
        return False
    # SIGUSR1 raises SoftTimeLimitExceeded inside the agent: the pool child survives, and
    # the attempt's late finish is refused by the compare-and-set. A thread pool cannot
    # terminate a task (Celery raises in the worker): its step's waiting thread notices
    # the cancellation and abandons the agent (hive.tasks.deadline).
    terminable = [r.task_id for r in running if r.terminable]
    if terminable:
        try:
            app.control.revoke(terminable, terminate=True, signal="SIGUSR1")
        except Exception as exc:  # broker trouble: agents still see ctx.is_cancelled()
            logger.warning("could not revoke %d running steps: %s", len(terminable), exc)
    logger.info("run %s %s; %d running steps revoked", run_id, status, len(running))
    return True
