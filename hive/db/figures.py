"""Farm-wide figures for ``hive exporter``: what is in flight, waiting, dead, when each
maintenance task last succeeded, the registry's services and workers by status, and how
many runs closed. Read on each scrape, in one transaction, each query starting from an
index: unfinished runs (``ix_runs_unfinished``), open dead letters (``ix_dead_letters_open``),
maintenance events (``ix_events_maintenance``, migration 0010), pending approvals
(``ix_approvals_pending``, migration 0013), instances by status; the workers table and the
run-close and purge counters (``run_closes``, migration 0014; ``purge_counts``, 0020) are
small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from hive.statuses import ServiceStatus, WorkerState

_IN_FLIGHT = text(
    """
    SELECT pipeline, status, count(*) AS n
      FROM runs
     WHERE finished_at IS NULL
     GROUP BY 1, 2
    """
)

# A step waits from its mark, or from its last need's finish when a chain marked it sent
# with the first step of the stretch (its message goes out only then). A retry or a
# deferred step waits from when its countdown ends (its mark is when the message falls due,
# hive/db/marks.py): until then it is in no queue.
_WAITING = text(
    """
    SELECT coalesce(s.options->>'queue', :default_queue) AS queue, count(*) AS n,
           extract(epoch FROM now() - min(greatest(
               s.enqueued_at,
               (SELECT max(n.finished_at) FROM step_runs n
                 WHERE n.run_id = s.run_id AND n.step_id = ANY(s.needs)))))::float8 AS oldest_s
      FROM runs r JOIN step_runs s ON s.run_id = r.id
     WHERE r.finished_at IS NULL AND r.status IN ('queued', 'running')
       AND s.status = 'pending' AND s.pending_needs = 0 AND s.enqueued_at IS NOT NULL
       AND s.enqueued_at <= now()
     GROUP BY 1
    """
)

_DEAD_LETTERS = text(
    """
    SELECT pipeline, count(*) AS n
      FROM dead_letters
     WHERE replayed_at IS NULL
     GROUP BY 1
    """
)

# One index probe per task (a loose index scan), not a read of every maintenance event:
# recovery alone records one every 30 s.
_MAINTENANCE = text(
    """
    WITH RECURSIVE tasks(task) AS (
        SELECT min(detail->>'task') FROM events WHERE kind = 'maintenance'
        UNION ALL
        SELECT (SELECT min(e.detail->>'task') FROM events e
                 WHERE e.kind = 'maintenance' AND e.detail->>'task' > t.task)
          FROM tasks t WHERE t.task IS NOT NULL
    )
    SELECT t.task,
           (SELECT extract(epoch FROM max(e.created_at))::float8 FROM events e
             WHERE e.kind = 'maintenance' AND e.detail->>'task' = t.task) AS last_s
      FROM tasks t
     WHERE t.task IS NOT NULL
    """
)


# From ix_approvals_pending: the pending ones alone.
_APPROVALS = text(
    """
    SELECT r.pipeline, count(*) AS n,
           extract(epoch FROM now() - min(a.requested_at))::float8 AS oldest_s
      FROM approvals a JOIN runs r ON r.id = a.run_id
     WHERE a.status = 'pending'
     GROUP BY 1
    """
)

_SERVICE_INSTANCES = text(
    "SELECT service, status, count(*) AS n FROM service_instances GROUP BY 1, 2"
)
_WORKERS = text("SELECT state, count(*) AS n FROM workers GROUP BY 1")
# A few rows per pipeline and status (one per shard that ever closed one).
_RUN_CLOSES = text("SELECT pipeline, status, sum(n)::bigint AS n FROM run_closes GROUP BY 1, 2")
_PURGE_COUNTS = text("SELECT kind, n FROM purge_counts")


@dataclass(frozen=True)
class FarmFigures:
    runs_in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    """(pipeline, status) -> runs not finished."""
    waiting: dict[str, int] = field(default_factory=dict)
    """queue -> steps ready and sent, not yet claimed."""
    oldest_waiting_s: dict[str, float] = field(default_factory=dict)
    """queue -> age of its oldest waiting step."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """pipeline -> dead letters not replayed."""
    maintenance_last_success: dict[str, float] = field(default_factory=dict)
    """task -> Unix time of its last recorded (successful) run."""
    service_instances: dict[tuple[str, str], int] = field(default_factory=dict)
    """(service, status) -> instances; every status of a registered service, 0 included."""
    workers: dict[str, int] = field(default_factory=dict)
    """state -> workers in the registry; every state, 0 included."""
    approvals_pending: dict[str, int] = field(default_factory=dict)
    """pipeline -> steps awaiting approval."""
    approvals_oldest_s: dict[str, float] = field(default_factory=dict)
    """pipeline -> how long its oldest pending approval has waited."""
    runs_closed: dict[tuple[str, str], int] = field(default_factory=dict)
    """(pipeline, final status) -> runs closed since the counters began: never decreases."""
    purged: dict[str, int] = field(default_factory=dict)
    """kind -> rows retention purged since the counters began (``purge_counts``): never
    decreases."""
    read_at_s: float = 0.0
    """Unix time of the reading by PostgreSQL's clock, which ages of the times above are
    measured from."""


_NOW = text("SELECT extract(epoch FROM now())::float8")


def database_now(conn: Connection) -> float:
    """PostgreSQL's clock, as Unix time: the one its timestamps' ages are measured by, so a
    host whose clock is off reads them right."""
    return float(conn.execute(_NOW).scalar_one())


def read_maintenance(conn: Connection) -> dict[str, float]:
    """task -> Unix time of its last recorded (successful) run."""
    return {r.task: r.last_s for r in conn.execute(_MAINTENANCE) if r.last_s is not None}


def read_figures(conn: Connection, default_queue: str) -> FarmFigures:
    """Every farm-wide figure, from one connection."""
    figures = FarmFigures(
        runs_in_flight={(r.pipeline, r.status): r.n for r in conn.execute(_IN_FLIGHT)},
        dead_letters={r.pipeline: r.n for r in conn.execute(_DEAD_LETTERS)},
        maintenance_last_success=read_maintenance(conn),
        runs_closed={(r.pipeline, r.status): r.n for r in conn.execute(_RUN_CLOSES)},
        purged={r.kind: r.n for r in conn.execute(_PURGE_COUNTS)},
        read_at_s=database_now(conn),
    )
    # Zeros too: "no passing instance" is a series at 0, not a missing one.
    for row in conn.execute(_SERVICE_INSTANCES):
        for status in ServiceStatus:
            figures.service_instances.setdefault((row.service, status.value), 0)
        figures.service_instances[(row.service, row.status)] = row.n
    figures.workers.update({state.value: 0 for state in WorkerState})
    figures.workers.update({row.state: row.n for row in conn.execute(_WORKERS)})
    for row in conn.execute(_APPROVALS):
        figures.approvals_pending[row.pipeline] = row.n
        figures.approvals_oldest_s[row.pipeline] = max(row.oldest_s or 0.0, 0.0)
    for row in conn.execute(_WAITING, {"default_queue": default_queue}):
        figures.waiting[row.queue] = row.n
        figures.oldest_waiting_s[row.queue] = max(row.oldest_s or 0.0, 0.0)
    return figures
