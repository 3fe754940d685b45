"""sweep_workers: mark lost the workers that stopped heartbeating, and take their steps back.

A worker silent for longer than ``HIVE_WORKER_LOST_AFTER_S`` that does not answer
Celery's ping either is marked lost (a compare-and-set on ``online``), a ``worker_lost``
event names it and the steps it was running, and each of those attempts is ended as the
lease sweep ends an expired one (:func:`hive.beat.recovery.take_back`): recorded failed as
``worker_lost``, retryable, its next attempt sent by the one dispatcher, long before the
lease would have run out. Should the worker come back after all, its late finish is
refused and its heartbeat puts it back online. A node started again under its name before
it was found silent (killed and restarted by a supervisor within
``HIVE_WORKER_LOST_AFTER_S``) is never lost, but the steps its earlier process was running
(claimed before the row's ``started_at``) are taken back the same way, as ``worker_lost``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from hive.beat.recovery import take_back
from hive.db import events as event_log
from hive.db import workers as registry
from hive.db.retrying import Connection, in_transaction
from hive.tasks.presence import answering

logger = logging.getLogger(__name__)


@dataclass
class WorkerSweep:
    workers_lost: int = 0
    workers_answering: int = 0
    """Workers silent for too long that still answered a ping: left online."""
    steps_taken_back: int = 0
    """Attempts of lost workers' steps ended by this sweep (their next attempts sent)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep_workers(lost_after_s: float) -> WorkerSweep:
    """Mark the silent workers lost and take back what they were running."""
    report = WorkerSweep()
    silent = in_transaction(lambda conn: registry.silent_workers(conn, lost_after_s))
    if silent:
        # A second opinion before taking anything back: a worker whose heartbeats did not
        # land (PostgreSQL was out of reach for a while) but that answers Celery's ping is
        # alive; its steps stay with it, and their leases still cover them.
        alive = answering(silent)
        if alive:
            report.workers_answering = len(alive)
            logger.warning("workers %s missed their heartbeats but answer a ping; not lost",
                           ", ".join(sorted(alive)))  # fmt: skip
        silent = [name for name in silent if name not in alive]
    if silent:
        lost = in_transaction(lambda conn: _mark_lost(conn, silent, lost_after_s))
        report.workers_lost = len(lost)
    # Every step of a lost worker, not only those of the workers just marked: a sweep cut
    # short (PostgreSQL gone mid-way) leaves the rest to the next one.
    # And those a node's earlier process left running when it was started again under its
    # name before it could be found silent (a supervisor's restart): that process is gone.
    for orphaned in in_transaction(registry.steps_of_lost_workers):
        stalled = orphaned.step
        if orphaned.restarted:
            message = f"worker {stalled.worker} was started again while running it"
        else:
            message = f"worker {stalled.worker} stopped heartbeating and was marked lost"
        if take_back(stalled, "worker_lost", message):
            report.steps_taken_back += 1
    if report.workers_lost or report.steps_taken_back:
        logger.warning("worker sweep: %s", report.as_dict())
    return report


def _mark_lost(
    conn: Connection, names: list[str], lost_after_s: float
) -> list[registry.LostWorker]:
    lost = registry.mark_lost(conn, names, lost_after_s)
    for worker in lost:
        detail = {
            "worker": worker.name,
            "last_heartbeat": worker.heartbeat_at.isoformat(),
            "steps": registry.step_ids(worker.steps),
        }
        event_log.record(conn, "worker_lost", detail)
        logger.warning("worker %s lost: no heartbeat since %s; %d steps to take back",
                       worker.name, worker.heartbeat_at.isoformat(), len(worker.steps))  # fmt: skip
    return lost
