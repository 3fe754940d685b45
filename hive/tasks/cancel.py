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
    if running:
        # SIGUSR1 raises SoftTimeLimitExceeded inside the agent: the pool child survives,
        # and the attempt's late finish is refused by the compare-and-set.
        try:
            app.control.revoke(running, terminate=True, signal="SIGUSR1")
        except Exception as exc:  # broker trouble: agents still see ctx.is_cancelled()
            logger.warning("could not revoke %d running steps: %s", len(running), exc)
    logger.info("run %s %s; %d running steps revoked", run_id, status, len(running))
    return True
