"""Queries of the maintenance sweeps: what stalled, what was never sent, what is overdue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.statuses import RunStatus, StepStatus, WorkerState


@dataclass(frozen=True)
class StalledStep:
    run_id: uuid.UUID
    step_id: str
    attempt: int
    worker: str | None


_EXPIRED_LEASES = text(
    """
    SELECT s.run_id, s.step_id, s.attempt, s.worker
      FROM runs r JOIN step_runs s ON s.run_id = r.id
     WHERE r.finished_at IS NULL AND r.status IN ('queued', 'running')
       AND s.status = 'running' AND s.lease_until < now()
     ORDER BY s.lease_until
     LIMIT :limit
    """
)


def expired_leases(conn: Connection, limit: int = 1000) -> list[StalledStep]:
    """Running steps whose worker stopped renewing them: presumed dead."""
    rows = conn.execute(_EXPIRED_LEASES, {"limit": limit})
    return [StalledStep(r.run_id, r.step_id, r.attempt, r.worker) for r in rows]


_STATUSES = {"queued": RunStatus.QUEUED, "running": RunStatus.RUNNING,
             "pending": StepStatus.PENDING}  # fmt: skip

# A step marked sent whose message may be lost: its publish was never confirmed in time,
# or it has waited past the re-send threshold, doubled for each earlier re-send (capped),
# or a worker was found lost (:lost_before, the last loss; NULL for none) since the mark
# was made and the mark is due. A message is taken by a worker at once, also one with a
# countdown (held in the worker's memory until it falls due); one a lost worker had taken
# and not yet claimed is in no queue, and Redis gives it back only after the visibility
# timeout (hours). The mark was made at enqueued_at, or, with a countdown, at
# countdown_from. Due: before the loss (sent again at once), or, a countdown falling due
# after the loss was found, :due_grace_s ago, time for a live worker holding the message
# to claim it first. One loss sends a mark again at most once: the new mark is made after
# it. Copies stay bounded by the queue's shortfall (hive/beat/recovery.py).
_MARK_OVERDUE = """
    s.enqueued_at IS NOT NULL
    AND (s.publish_by < now()
         OR s.enqueued_at < now() - make_interval(
                secs => :stale_s * power(2, least(s.resends, :max_doublings)))
         OR (s.publish_by IS NULL AND coalesce(s.countdown_from, s.enqueued_at) < :lost_before
             AND s.enqueued_at < greatest(:lost_before,
                                          now() - make_interval(secs => :due_grace_s))))
"""

# At most 2^4 = 16 times the threshold between two re-sends of one step (160 min by default).
MAX_DOUBLINGS = 4

# A live worker holding a message with a countdown claims it within a second or so of its
# falling due (Celery's timer), unless all its pool is busy (a copy is then dropped by the
# claim).
DUE_GRACE_S = 5.0

_UNSENT = text(
    f"""
    SELECT s.run_id, s.step_id, r.priority, s.enqueued_at IS NOT NULL AS marked,
           coalesce(s.options->>'queue', :default_queue) AS queue
      FROM runs r JOIN step_runs s ON s.run_id = r.id
     WHERE r.finished_at IS NULL AND r.status IN (:queued, :running)
       AND s.status = :pending AND s.pending_needs = 0
       AND (s.enqueued_at IS NULL OR ({_MARK_OVERDUE}))
     ORDER BY s.enqueued_at NULLS FIRST, s.run_id, s.position
     LIMIT :limit
    """
)


@dataclass(frozen=True)
class UnsentStep:
    run_id: uuid.UUID
    step_id: str
    priority: str
    queue: str
    marked: bool
    """Marked sent: its message may still be in the broker (else it was never sent)."""


def unsent_ready_steps(
    conn: Connection,
    stale_s: float,
    default_queue: str,
    limit: int = 1000,
    *,
    lost_before: datetime | None = None,
) -> list[UnsentStep]:
    """Ready steps that may have no message, oldest mark first: never sent (a failed
    publish), marked but never confirmed published (the dispatcher died between commit and
    publish), marked so long ago that the message may be gone (``stale_s``, doubled for
    each earlier re-send of the step), or due and marked before ``lost_before`` (a worker's
    loss)."""
    params = {**_STATUSES, "stale_s": stale_s, "max_doublings": MAX_DOUBLINGS,
              "default_queue": default_queue, "limit": limit,
              "lost_before": lost_before, "due_grace_s": DUE_GRACE_S}  # fmt: skip
    return [
        UnsentStep(r.run_id, r.step_id, r.priority, r.queue, r.marked)
        for r in conn.execute(_UNSENT, params)
    ]


# Steps whose message should be in their queue now: ready, marked sent, not in the middle
# of being published (a mark still within its publish grace may not be there yet), and due
# (a message with a countdown is held by a worker until then, not in the queue's list).
_WAITING = text(
    """
    SELECT coalesce(s.options->>'queue', :default_queue) AS queue, count(*) AS n
      FROM runs r JOIN step_runs s ON s.run_id = r.id
     WHERE r.finished_at IS NULL AND r.status IN (:queued, :running)
       AND s.status = :pending AND s.pending_needs = 0 AND s.enqueued_at IS NOT NULL
       AND s.enqueued_at <= now()
       AND (s.publish_by IS NULL OR s.publish_by < now())
       AND coalesce(s.options->>'queue', :default_queue) = ANY(:queues)
     GROUP BY 1
    """
).bindparams(bindparam("queues", type_=ARRAY(Text)))


def waiting_per_queue(conn: Connection, queues: list[str], default_queue: str) -> dict[str, int]:
    """How many messages each of ``queues`` should hold: one per ready step marked sent."""
    params = {**_STATUSES, "queues": queues, "default_queue": default_queue}
    rows = conn.execute(_WAITING, params)
    return {r.queue: int(r.n) for r in rows}


_UNMARK_OVERDUE = text(
    f"""
    UPDATE step_runs s SET enqueued_at = NULL, publish_by = NULL, resends = s.resends + 1
     WHERE s.run_id = :run_id AND s.step_id = ANY(:ids)
       AND s.status = :pending AND s.pending_needs = 0 AND ({_MARK_OVERDUE})
    RETURNING s.step_id, s.resends
    """
).bindparams(bindparam("ids", type_=ARRAY(Text)))


def unmark_for_resend(
    conn: Connection,
    run_id: uuid.UUID,
    step_ids: list[str],
    stale_s: float,
    *,
    lost_before: datetime | None = None,
) -> dict[str, int]:
    """Forget the marks of those ``step_ids`` still overdue (compare-and-set: a step claimed
    or sent again meanwhile is left alone) and count a re-send for each; returns step id →
    its re-sends so far."""
    params = {**_STATUSES, "run_id": run_id, "ids": step_ids, "stale_s": stale_s,
              "max_doublings": MAX_DOUBLINGS, "lost_before": lost_before,
              "due_grace_s": DUE_GRACE_S}  # fmt: skip
    return {r.step_id: int(r.resends) for r in conn.execute(_UNMARK_OVERDUE, params)}


_LAST_WORKER_LOSS = text("SELECT max(lost_at) FROM workers")


def last_worker_loss(conn: Connection) -> datetime | None:
    """When a worker was last found gone without stopping (None: never, or its row was
    purged): any message it had taken and not yet claimed is lost, a countdown's too, which
    may fall due long after the loss (past the re-send threshold, which covers a mark made
    before it only if no countdown or earlier re-send pushes its time on)."""
    loss: datetime | None = conn.execute(_LAST_WORKER_LOSS).scalar()
    return loss


_FORGET_SENT = text(
    """
    UPDATE step_runs s SET enqueued_at = NULL
      FROM runs r
     WHERE r.finished_at IS NULL AND r.status IN ('queued', 'running') AND r.id = s.run_id
       AND s.status = 'pending' AND s.enqueued_at IS NOT NULL
    RETURNING s.run_id
    """
)


def forget_all_sent(conn: Connection) -> int:
    """The broker lost its queues: every "sent" mark of an active run is void."""
    return len(conn.execute(_FORGET_SENT).all())


_ALL_DONE = text(
    """
    SELECT id, failed_step FROM runs
     WHERE finished_at IS NULL AND status IN ('queued', 'running') AND steps_remaining = 0
     ORDER BY created_at
     LIMIT :limit
    """
)


def unfinished_done_runs(conn: Connection, limit: int = 1000) -> list[tuple[uuid.UUID, str | None]]:
    """Active runs with no step left: whoever counted the last one down stopped before
    finishing the run. Returns (run id, failed step)."""
    return [(r.id, r.failed_step) for r in conn.execute(_ALL_DONE, {"limit": limit})]


def database_started_at(conn: Connection) -> str:
    """When the PostgreSQL server last (re)started."""
    return str(conn.execute(text("SELECT pg_postmaster_start_time()::text")).scalar_one())


_OVERDUE = text(
    """
    SELECT id FROM runs
     WHERE finished_at IS NULL AND status IN ('queued', 'running')
       AND deadline_at IS NOT NULL AND deadline_at < now()
     LIMIT :limit
    """
)


def overdue_runs(conn: Connection, limit: int = 1000) -> list[uuid.UUID]:
    return [r.id for r in conn.execute(_OVERDUE, {"limit": limit})]


# Old runs and events go a batch per transaction (the caller commits between batches): a
# month of runs, with the steps, attempts and events that cascade from them, is purged in
# short transactions, none holding many rows' locks (or a replica's apply) for long. Old
# runs are found through ix_runs_created_at (a run finishes after it is created); a replayed
# run counts from its last close.
_PURGEABLE = """
    created_at < now() - make_interval(days => :days)
    AND status IN ('succeeded', 'failed', 'cancelled', 'expired', 'budget_exceeded')
    AND coalesce(finished_at, created_at) < now() - make_interval(days => :days)
"""
# The condition is stated again on the row deleted: a run the batch read as finished may
# be reopened by a replay that commits while the delete waits for its row, and only the
# outer WHERE is checked again on the row as that commit left it (the id list is not).
_PURGE_RUNS = text(
    f"""
    DELETE FROM runs
     WHERE id IN (
        SELECT id FROM runs WHERE {_PURGEABLE}
         ORDER BY created_at
         LIMIT :batch
     )
       AND {_PURGEABLE}
    """
)

# A run's events go with the run (cascade) once it is finished and old: while it is still
# going (held for an approval for weeks, say) its history is kept. "Finished" read in the
# batch's snapshot is not enough: a replay reopening the run may commit while the batch
# runs, and no event row it touches would make PostgreSQL look again. So the runs are
# locked (FOR SHARE, which a replay's FOR UPDATE of the run waits for, and which waits for
# it) and "finished" is re-checked on each locked row as the last commit left it: a replay
# either reopens the run after this batch commits, or this batch keeps its events.
_PURGE_EVENTS = text(
    """
    WITH old AS MATERIALIZED (
        SELECT e.id, e.run_id FROM events e
         WHERE e.created_at < now() - make_interval(days => :days)
           AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = e.run_id AND r.finished_at IS NULL)
         ORDER BY e.created_at
         LIMIT :batch
    ), finished AS MATERIALIZED (
        SELECT r.id FROM runs r
         WHERE r.id IN (SELECT run_id FROM old) AND r.finished_at IS NOT NULL
           FOR SHARE OF r
    )
    DELETE FROM events
     WHERE id IN (SELECT id FROM old
                   WHERE run_id IS NULL OR run_id IN (SELECT id FROM finished))
    """
)


def purge_runs_batch(conn: Connection, days: int, batch: int) -> int:
    """Delete at most ``batch`` of the oldest finished runs older than ``days`` (their steps,
    attempts, events, dead letters, approvals and budget holds cascade); how many."""
    return int(conn.execute(_PURGE_RUNS, {"days": days, "batch": batch}).rowcount)


def purge_events_batch(conn: Connection, days: int, batch: int) -> int:
    """Delete at most ``batch`` of the oldest events older than ``days``, none of a run still
    going; how many."""
    return int(conn.execute(_PURGE_EVENTS, {"days": days, "batch": batch}).rowcount)


# Workers that left (offline) or were lost that long ago: a farm whose node names change
# with every deployment would otherwise keep a row for each one forever.
_PURGE_WORKERS = text(
    """
    DELETE FROM workers
     WHERE state <> :online AND heartbeat_at < now() - make_interval(days => :days)
    """
)


# A tenant's spending on UTC days that long past (its budget itself stays).
_PURGE_BUDGET_DAYS = text(
    """
    DELETE FROM tenant_budget_days
     WHERE day < (now() AT TIME ZONE 'UTC')::date - make_interval(days => :days)
    """
)


_COUNT_PURGED = text(
    """
    INSERT INTO purge_counts (kind, n) VALUES (:kind, :n)
    ON CONFLICT (kind) DO UPDATE SET n = purge_counts.n + excluded.n
    """
)


def count_purged(conn: Connection, counts: dict[str, int]) -> None:
    """Add what a purge deleted (kind -> rows) to ``purge_counts`` (``hive_purged_total``),
    in the transaction that deleted it: a transaction retried counts once."""
    for kind, n in counts.items():
        if n:
            conn.execute(_COUNT_PURGED, {"kind": kind, "n": n})


def purge_registry(conn: Connection, days: int) -> dict[str, Any]:
    """Delete workers gone (offline or lost) and tenants' daily spending older than
    ``days`` (a few rows: one per node name, one per tenant and day). Online workers are
    never purged."""
    params = {"days": days, "online": WorkerState.ONLINE}
    workers_deleted = conn.execute(_PURGE_WORKERS, params).rowcount
    budget_days = conn.execute(_PURGE_BUDGET_DAYS, {"days": days}).rowcount
    return {"workers": workers_deleted, "budget_days": budget_days}
