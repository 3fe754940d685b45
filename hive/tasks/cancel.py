"""Stop a run: cancelled by a user, expired past its deadline, or stopped by a budget."""

from __future__ import annotations

import logging
import uuid

from hive.db import events, stops
from hive.db.retrying import Connection, in_transaction_giving_way
from hive.errors import BudgetExceeded
from hive.statuses import RunStatus, StepStatus
from hive.tasks.app import app

logger = logging.getLogger(__name__)


def stop_run(
    run_id: uuid.UUID, *, status: RunStatus = RunStatus.CANCELLED, reason: str = ""
) -> bool:
    """End an active run as ``cancelled`` or ``expired``: no new step of it starts (claims
    check the run's status), unfinished steps end ``cancelled``, running ones are revoked.
    False when the run was not active, or had no step left to stop (it is closing)."""
    error = {"type": status, "message": reason or f"run {status}"}
    running = in_transaction_giving_way(
        lambda conn, give_way: stops.stop(conn, run_id, status, error, give_way=give_way)
    )
    if running is None:
        return False
    _revoke(running)
    logger.info("run %s %s; %d running steps revoked", run_id, status, len(running))
    return True


def stop_for_budget(
    run_id: uuid.UUID, step_id: str, attempt: int, exceeded: BudgetExceeded
) -> bool:
    """End the run ``budget_exceeded`` because ``step_id`` would pass a budget: the step
    does not start and ends ``skipped`` with every pending step of the run; steps running
    in other branches are stopped as a cancel stops them. A ``budget_exceeded`` event names
    the budget and by how much. False when the run was no longer active."""
    detail = exceeded.detail()
    error = {"type": str(RunStatus.BUDGET_EXCEEDED), "step_id": step_id,
             "message": str(exceeded), **detail}  # fmt: skip

    def txn(conn: Connection, give_way: bool) -> list[stops.Running] | None:
        running = stops.stop(
            conn, run_id, RunStatus.BUDGET_EXCEEDED, error,
            unstarted=StepStatus.SKIPPED, refused=step_id, give_way=give_way,
        )  # fmt: skip
        if running is not None:
            events.record(
                conn, "budget_exceeded", {**detail, "attempt": attempt},
                run_id=run_id, step_id=step_id,
            )  # fmt: skip
        return running

    running = in_transaction_giving_way(txn)
    if running is None:
        return False
    _revoke(running)
    logger.warning("run stopped: %s", exceeded)
    return True


def _revoke(running: list[stops.Running]) -> None:
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
