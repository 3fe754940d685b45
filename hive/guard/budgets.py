"""Cost budgets in the step path: reserve a step's estimated cost before its agent runs,
settle what it cost after (SQL and the compare-and-set in :mod:`hive.db.budgets`).

The step task calls :func:`reserve_step` once the step is admitted, and settles with
:func:`settled` around the agent's run, before the attempt's outcome is recorded: the next
step of the run reserves against what this one really spent. A reservation the worker
could not settle (it died, PostgreSQL was out of reach) is released by the transaction
that records the attempt's end (:mod:`hive.tasks.outcomes`) or by recovery
(:func:`release_orphaned_holds`), at the cost the attempt recorded, if any.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from hive import metrics
from hive.agents.base import Agent
from hive.db import budgets
from hive.db.options import DEFAULT_TIMEOUT_S
from hive.db.retrying import Connection, in_transaction
from hive.errors import BudgetExceeded
from hive.settings import get_settings

logger = logging.getLogger(__name__)

__all__ = [
    "BudgetExceeded",
    "count_warnings",
    "release_attempt",
    "release_orphaned_holds",
    "reserve_step",
    "settled",
]


def reserve_step(
    agent: Agent[Any, Any], step_input: Any, run_id: uuid.UUID, step_id: str, attempt: int
) -> budgets.Hold | None:
    """Reserve the step's estimated cost (``agent.estimate_cost``) against its run's and
    its tenant's budgets; None when the agent estimates nothing or no budget applies.

    Raises:
        BudgetExceeded: a budget has no room for it; nothing is reserved.
    """
    if not isinstance(step_input, dict):
        return None
    estimate = agent.estimate_cost(step_input)
    if estimate is None:
        return None
    try:
        return in_transaction(
            lambda conn: budgets.reserve(conn, run_id, step_id, attempt, estimate)
        )
    except BudgetExceeded as exc:
        metrics.BUDGET_EXCEEDED.labels(exc.scope).inc()
        raise


# What settled() gives a step that holds nothing (no estimate, no budget): most steps.
_NOTHING_HELD = contextlib.nullcontext()


def settled(
    hold: budgets.Hold | None, usage: Mapping[str, float]
) -> contextlib.AbstractContextManager[None]:
    """Settle ``hold`` when the block ends, however it ends, at the ``cost`` in ``usage``
    (what the agent reported by then). A settle that fails is logged and left to the
    attempt's end or to recovery: the step's outcome still gets recorded."""
    return _NOTHING_HELD if hold is None else _settled(hold, usage)


@contextlib.contextmanager
def _settled(hold: budgets.Hold, usage: Mapping[str, float]) -> Iterator[None]:
    try:
        yield
    finally:
        cost = float(usage.get("cost", 0.0) or 0.0)
        try:
            warnings = in_transaction(
                lambda conn: budgets.settle(
                    conn, hold.run_id, hold.step_id, hold.attempt, cost,
                    warn_at=get_settings().budgets.warn_at,
                ),
                retry_s=5.0,
            )  # fmt: skip
        except Exception as exc:
            logger.warning("could not settle the step's budget reservation: %s", exc)
        else:
            count_warnings(warnings)


def release_attempt(
    conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int, cost_usd: float
) -> list[budgets.BudgetWarning] | None:
    """In the transaction that records an attempt's end: release what it still holds (a
    worker that did not settle), at ``cost_usd``. None when it held nothing."""
    warn_at = get_settings().budgets.warn_at
    return budgets.settle(
        conn, run_id, step_id, attempt, cost_usd, warn_at=warn_at, by="attempt_end"
    )


def release_orphaned_holds() -> int:
    """Recovery: release the reservations of attempts that are over and never settled (a
    killed worker of a stopped run, a settle that could not reach the database), each at
    the cost its attempt recorded. Returns how many."""
    settings = get_settings()
    warn_at = settings.budgets.warn_at

    def txn(conn: Connection) -> tuple[int, list[budgets.BudgetWarning]]:
        orphans = budgets.orphaned_holds(
            conn,
            default_timeout_s=DEFAULT_TIMEOUT_S,
            grace_s=settings.recovery.lease_grace_s,
        )
        found: list[budgets.BudgetWarning] = []
        for orphan in orphans:
            found += budgets.settle(
                conn, orphan.run_id, orphan.step_id, orphan.attempt, orphan.cost_usd,
                warn_at=warn_at, by="recovery",
            ) or []  # fmt: skip
        return len(orphans), found

    released, warnings = in_transaction(txn)
    count_warnings(warnings)
    return released


def count_warnings(warnings: list[budgets.BudgetWarning] | None) -> None:
    """Count committed warnings in ``hive_budget_warnings_total``."""
    for warning in warnings or ():
        metrics.BUDGET_WARNINGS.labels(warning.scope).inc()
        logger.warning(
            "budget warning: %s spent %.6g of %.6g USD",
            warning.scope,
            warning.spent_usd,
            warning.limit_usd,
        )
