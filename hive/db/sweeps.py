"""Queries of the maintenance sweeps: what stalled, what was never sent, what is overdue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text


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


_UNSENT = text(
    """
    SELECT s.run_id, array_agg(s.step_id ORDER BY s.position) AS steps, min(r.priority) AS priority
      FROM runs r JOIN step_runs s ON s.run_id = r.id
     WHERE r.finished_at IS NULL AND r.status IN ('queued', 'running')
       AND s.status = 'pending' AND s.pending_needs = 0
       AND (s.enqueued_at IS NULL OR s.enqueued_at < now() - make_interval(secs => :stale_s)
            OR s.publish_by < now())
     GROUP BY s.run_id
     LIMIT :limit
    """
)


def unsent_ready_steps(
    conn: Connection, stale_s: float, limit: int = 1000
) -> list[tuple[uuid.UUID, list[str], str]]:
    """Ready steps with no message: never sent (a failed publish), marked but never
    confirmed published (the dispatcher died between commit and publish), or sent so long
    ago that the message must be gone. Returns (run id, step ids, priority)."""
    rows = conn.execute(_UNSENT, {"stale_s": stale_s, "limit": limit})
    return [(r.run_id, list(r.steps), r.priority) for r in rows]


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


_PURGE = (
    text("DELETE FROM events WHERE created_at < now() - make_interval(days => :days)"),
    text(
        """
        DELETE FROM runs
         WHERE status IN ('succeeded', 'failed', 'cancelled', 'expired')
           AND coalesce(finished_at, created_at) < now() - make_interval(days => :days)
        """
    ),
)


def purge_older_than(conn: Connection, days: int) -> dict[str, Any]:
    """Delete finished runs (their steps, attempts, events and dead letters cascade) and
    events older than ``days``. Active runs are never purged."""
    events_deleted = conn.execute(_PURGE[0], {"days": days}).rowcount
    runs_deleted = conn.execute(_PURGE[1], {"days": days}).rowcount
    return {"runs": runs_deleted, "events": events_deleted}
