"""recover_stalled_runs: take back what stalled, send what was never sent, expire what is late.

Everything it re-sends goes through the one dispatcher, as a new attempt where a
step had started. PostgreSQL is the truth: this rebuilds the broker's state from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis
from sqlalchemy import Connection

from hive import keys
from hive.db import events as event_log
from hive.db import sweeps
from hive.db.retrying import in_transaction
from hive.db.steps import unmark, unmark_chain_after
from hive.settings import get_settings
from hive.tasks import outcomes
from hive.tasks.cancel import stop_run
from hive.tasks.dispatch import Publication, dispatch

logger = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    broker_reset: bool = False
    database_restarted: bool = False
    leases_expired: int = 0
    redispatched_steps: int = 0
    expired_runs: int = 0
    finished_runs: int = 0

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


def broker_was_reset(client: redis.Redis) -> bool:
    """True when the broker's marker key is gone: Redis restarted empty or was flushed, so
    every message it held is lost. (Also true on the very first sweep; re-sending then is
    harmless, the claim drops duplicates.)"""
    return bool(
        client.set(keys.broker_epoch(get_settings().broker.key_prefix), uuid.uuid4().hex, nx=True)
    )


def database_was_restarted(client: redis.Redis) -> bool:
    """True when PostgreSQL started again since the last sweep. A crash loses the claims
    committed without waiting for their WAL flush (``HIVE_CLAIM_SYNC_COMMIT``): their
    steps are back to "pending, sent" although their messages were consumed."""
    started = in_transaction(sweeps.database_started_at)
    seen = client.set(keys.database_epoch(get_settings().broker.key_prefix), started, get=True)
    return seen is not None and seen.decode() != started


def recover(client: redis.Redis) -> RecoveryReport:
    report = RecoveryReport()
    settings = get_settings()
    report.broker_reset = broker_was_reset(client)
    report.database_restarted = database_was_restarted(client)
    if report.broker_reset or report.database_restarted:
        cause = "broker_reset" if report.broker_reset else "database_restart"
        forgotten = in_transaction(lambda conn: _forget_all_sent(conn, cause))
        logger.warning("%s: %d sent steps will be sent again", cause, forgotten)

    for stalled in in_transaction(sweeps.expired_leases):
        error = {
            "type": "lease_expired",
            "message": f"no word from worker {stalled.worker} before the lease ran out",
            "traceback": None,
        }
        outcome = outcomes.record_failed_attempt(
            stalled.run_id, stalled.step_id, stalled.attempt, error
        )
        if outcome != "lost":
            report.leases_expired += 1

    for run_id, failed_step in in_transaction(sweeps.unfinished_done_runs):
        if in_transaction(lambda c, r=run_id, f=failed_step: outcomes.finish(c, r, f)):
            report.finished_runs += 1

    for run_id in in_transaction(sweeps.overdue_runs):
        if stop_run(run_id, status="expired", reason="the run passed its deadline"):
            report.expired_runs += 1

    for run_id, step_ids, priority in in_transaction(
        lambda c: sweeps.unsent_ready_steps(c, settings.recovery.redispatch_after_s)
    ):
        publication = in_transaction(_redispatch(run_id, step_ids, priority))
        if not publication:
            continue
        if publication.send():
            report.redispatched_steps += len(publication.step_ids)
    if any(asdict(report).values()):
        logger.info("recovery: %s", report.as_dict())
    return report


def _forget_all_sent(conn: Connection, cause: str) -> int:
    forgotten = sweeps.forget_all_sent(conn)
    event_log.record(conn, cause, {"sent_steps_forgotten": forgotten})
    return forgotten


def _redispatch(
    run_id: uuid.UUID, step_ids: list[str], priority: str
) -> Callable[[Connection], Publication]:
    def txn(conn: Connection) -> Publication:
        unmark(conn, run_id, step_ids)
        for step_id in step_ids:
            unmark_chain_after(conn, run_id, step_id)  # their chains go out again with them
        publication = dispatch(conn, run_id, step_ids, priority)
        if publication:
            event_log.record(conn, "redispatch", {"steps": publication.step_ids}, run_id=run_id)
        return publication

    return txn
