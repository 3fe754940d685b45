"""recover_stalled_runs: take back what stalled, send what was never sent, expire what is late.

Everything it re-sends goes through the one dispatcher, as a new attempt where a
step had started. PostgreSQL is the truth: this rebuilds the broker's state from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial

import redis

from hive import keys
from hive.db import events as event_log
from hive.db import sweeps
from hive.db.marks import unmark_chain_after
from hive.db.retrying import Connection, in_transaction
from hive.errors import DispatchError
from hive.guard.budgets import release_orphaned_holds
from hive.logs import log_context
from hive.settings import get_settings
from hive.statuses import RunStatus
from hive.tasks import outcomes
from hive.tasks.backlog import queued_messages
from hive.tasks.cancel import stop_run
from hive.tasks.dispatch import Publication, dispatch

logger = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    broker_reset: bool = False
    database_restarted: bool = False
    leases_expired: int = 0
    redispatched_steps: int = 0
    """Steps sent by this sweep: never sent before, or sent again (``resent_steps``)."""
    resent_steps: int = 0
    """Steps marked sent whose message was presumed lost and sent again."""
    held_back_steps: int = 0
    """Steps waiting past the threshold, not sent again: their queue can still hold them."""
    undeliverable_steps: int = 0
    """Steps whose publish failed for a reason retrying will not cure: failed and recorded."""
    expired_runs: int = 0
    finished_runs: int = 0
    budget_holds_released: int = 0
    """Budget reservations of attempts that ended without settling them."""

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
    if seen is None:
        return False
    return (seen.decode() if isinstance(seen, bytes) else str(seen)) != started


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
        message = f"no word from worker {stalled.worker} before the lease ran out"
        if take_back(stalled, "lease_expired", message):
            report.leases_expired += 1

    for run_id, failed_step in in_transaction(sweeps.unfinished_done_runs):
        if in_transaction(partial(outcomes.finish, run_id=run_id, failed_step=failed_step)):
            report.finished_runs += 1

    for run_id in in_transaction(sweeps.overdue_runs):
        with log_context(run_id=str(run_id)):
            if stop_run(run_id, status=RunStatus.EXPIRED, reason="the run passed its deadline"):
                report.expired_runs += 1

    _send_unsent(report, settings.recovery.redispatch_after_s)
    report.budget_holds_released = release_orphaned_holds()
    if any(asdict(report).values()):
        logger.info("recovery: %s", report.as_dict())
    return report


def take_back(stalled: sweeps.StalledStep, kind: str, message: str) -> bool:
    """End a running attempt whose worker is presumed gone: recorded as failed (``kind``,
    retryable) and, with retries left, the next attempt dispatched by the one dispatcher.
    The attempt's own late finish is then refused by the compare-and-set. False when the
    attempt had ended already."""
    error = {"type": kind, "message": message, "traceback": None}
    ids = {"run_id": str(stalled.run_id), "step_id": stalled.step_id}
    with log_context(**ids, attempt=stalled.attempt):
        outcome = outcomes.record_failed_attempt(
            stalled.run_id, stalled.step_id, stalled.attempt, error
        )
    return outcome is not None


def _send_unsent(report: RecoveryReport, stale_s: float) -> None:
    """Send the ready steps that have no message, and only those: a step marked sent
    whose message may still be in its queue is not sent again, so a backlog (or a queue
    nobody consumes) never fills up with copies."""
    lost_before, unsent = in_transaction(lambda c: _unsent(c, stale_s))
    to_send = [s for s in unsent if not s.marked]
    marked = [s for s in unsent if s.marked]
    if marked:
        room = _lost_messages(sorted({s.queue for s in marked}))
        for step in marked:  # oldest mark first
            if room.get(step.queue, 0) > 0:
                room[step.queue] -= 1
                to_send.append(step)
            else:
                report.held_back_steps += 1
    by_run: dict[uuid.UUID, tuple[str, list[str]]] = {}
    for step in to_send:
        by_run.setdefault(step.run_id, (step.priority, []))[1].append(step.step_id)
    for run_id, (priority, step_ids) in by_run.items():
        publication, resent = in_transaction(
            _redispatch(run_id, step_ids, priority, stale_s, lost_before)
        )
        if not publication:
            continue
        try:
            sent = publication.send()
        except DispatchError as exc:
            # Recorded (the steps failed, the run's error names them): said once, here.
            logger.error("recovery: %s", exc)
            report.undeliverable_steps += len(exc.step_ids)
            continue
        if sent:
            report.redispatched_steps += len(publication.step_ids)
            report.resent_steps += len(resent)


def _unsent(conn: Connection, stale_s: float) -> tuple[datetime | None, list[sweeps.UnsentStep]]:
    # A worker found lost may have died holding messages it had taken and not yet claimed:
    # they are in no queue, and Redis gives them back only after the visibility timeout.
    lost_before = sweeps.last_worker_loss(conn)
    unsent = sweeps.unsent_ready_steps(conn, stale_s, keys.DEFAULT_QUEUE, lost_before=lost_before)
    return lost_before, unsent


def _lost_messages(queues: list[str]) -> dict[str, int]:
    """For each queue, how many of the steps marked sent to it lack a message, at least.

    Every ready step marked sent should have one message in its queue, so a queue holding
    fewer messages than it has such steps lost the difference; one holding as many may
    have lost none, and a copy sent then would only pile up behind it. Which steps lost
    theirs is not known: the oldest marks are sent again, and should one of them still
    have its message, the queue then holds as many messages as steps, its copy is dropped
    by the claim, and the step that did lose its message is sent once the queue drains.
    Which marks may have lost theirs: those past the re-send threshold, and those made
    before a worker was found lost and now due (it may have died holding their messages,
    taken but not yet claimed, a countdown's too, which Redis's unacked hash keeps until
    the visibility timeout). A message a live worker holds past its due time (all its pool
    busy) counts as lost here too: its copy is dropped by the claim.
    Copies in a queue therefore never outnumber its waiting steps. If Redis loses
    everything, the broker-reset check has voided every mark first (they are sent as
    never sent), so every run still finishes. Redis is read before PostgreSQL: a message
    taken and claimed in between lowers the count of waiting steps, erring towards
    sending nothing (until the next sweep) rather than a copy.
    """
    depths = queued_messages(queues)
    waiting = in_transaction(lambda c: sweeps.waiting_per_queue(c, queues, keys.DEFAULT_QUEUE))
    return {q: max(waiting.get(q, 0) - depths.get(q, 0), 0) for q in queues}


def _forget_all_sent(conn: Connection, cause: str) -> int:
    forgotten = sweeps.forget_all_sent(conn)
    event_log.record(conn, cause, {"sent_steps_forgotten": forgotten})
    return forgotten


def _redispatch(
    run_id: uuid.UUID,
    step_ids: list[str],
    priority: str,
    stale_s: float,
    lost_before: datetime | None = None,
) -> Callable[[Connection], tuple[Publication, dict[str, int]]]:
    def txn(conn: Connection) -> tuple[Publication, dict[str, int]]:
        resends = sweeps.unmark_for_resend(conn, run_id, step_ids, stale_s, lost_before=lost_before)
        for step_id in step_ids:
            unmark_chain_after(conn, run_id, step_id)  # their chains go out again with them
        publication = dispatch(conn, run_id, step_ids, priority)
        resent = {s: n for s, n in resends.items() if s in publication.step_ids}
        if publication:
            detail = {"steps": publication.step_ids, "resent": resent}
            event_log.record(conn, "redispatch", detail, run_id=run_id)
        return publication, resent

    return txn
