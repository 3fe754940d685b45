"""Workers in the registry: registration, heartbeats, a clean stop, and the sweep's queries.

Every time is PostgreSQL's ``now()``: a heartbeat and the sweep that judges it read one
clock, whatever the hosts' clocks say. Each change of state is a compare-and-set on the
state (and, for the worker's own writes, its pid), so a sweep racing a heartbeat, or a
restarted worker racing its predecessor's last write, leaves one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.db.sweeps import StalledStep
from hive.statuses import RunStatus, StepStatus, WorkerState


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says of itself when it registers."""

    name: str
    pid: int
    queues: list[str]
    concurrency: int
    pool: str
    hive_version: str
    celery_version: str


@dataclass(frozen=True)
class WorkerRow:
    name: str
    pid: int
    queues: list[str]
    concurrency: int
    pool: str
    hive_version: str
    celery_version: str
    started_at: datetime
    heartbeat_at: datetime
    state: str
    lost_at: datetime | None


@dataclass(frozen=True)
class OrphanedStep:
    """A step still running under a worker's name whose process is gone."""

    step: StalledStep
    restarted: bool
    """Its worker's node was started again (the step was claimed before the row's
    ``started_at``); else the worker was found lost."""


@dataclass(frozen=True)
class LostWorker:
    name: str
    heartbeat_at: datetime
    steps: list[StalledStep]
    """The steps it was running when it was marked lost."""


# A row still online when its node registers again belongs to a run of it that never
# stopped (killed, and restarted before the sweep found it silent): it was lost now, and
# lost_at says so (recovery re-sends what such a worker may have held: hive.beat.recovery).
# A lost row keeps the time it was found lost; one that stopped cleanly has none.
# started_at is when this process became ready, before it could claim anything, even when
# it registers late (PostgreSQL out of reach at start): a step still running under the name
# that was claimed before it belongs to an earlier run of the node (see _LOST_STEPS).
_REGISTER = text(
    """
    INSERT INTO workers AS w (name, pid, queues, concurrency, pool, hive_version,
                              celery_version, started_at, heartbeat_at, state, lost_at)
    VALUES (:name, :pid, :queues, :concurrency, :pool, :hive_version, :celery_version,
            now() - make_interval(secs => :running_s), now(), :online, NULL)
    ON CONFLICT (name) DO UPDATE
       SET pid = excluded.pid, queues = excluded.queues, concurrency = excluded.concurrency,
           pool = excluded.pool, hive_version = excluded.hive_version,
           celery_version = excluded.celery_version, started_at = excluded.started_at,
           heartbeat_at = excluded.heartbeat_at, state = excluded.state,
           lost_at = CASE w.state WHEN :online THEN now() WHEN :lost THEN w.lost_at END
    """
).bindparams(bindparam("queues", type_=ARRAY(Text)))


def register(conn: Connection, info: WorkerInfo, running_s: float = 0.0) -> None:
    """Record the worker as online, started ``running_s`` ago (when it became ready); a row
    of the same name (an earlier run of this node) is taken over, and if that run never
    stopped, ``lost_at`` is now. The steps that run left running are taken back by the
    next worker sweep (:func:`steps_of_lost_workers`)."""
    params = {**info.__dict__, "online": WorkerState.ONLINE, "lost": WorkerState.LOST,
              "running_s": max(running_s, 0.0)}  # fmt: skip
    conn.execute(_REGISTER, params)


# A worker found lost that beats again was not lost after all: its loss is forgotten.
_HEARTBEAT = text(
    """
    UPDATE workers w SET heartbeat_at = now(), state = :online,
                         lost_at = CASE WHEN old.state = :lost THEN NULL ELSE w.lost_at END
      FROM (SELECT name, state FROM workers WHERE name = :name AND pid = :pid FOR UPDATE) old
     WHERE w.name = old.name
    RETURNING old.state
    """
)


def heartbeat(conn: Connection, name: str, pid: int) -> WorkerState | None:
    """Record a heartbeat; the state the worker had before it (``lost``: it came back), or
    None when no row is this process's (gone, or taken by another process of that name)."""
    params = {"name": name, "pid": pid, "online": WorkerState.ONLINE, "lost": WorkerState.LOST}
    row = conn.execute(_HEARTBEAT, params)
    state = row.scalar_one_or_none()
    return None if state is None else WorkerState(state)


_HOLDER = text(
    """
    SELECT pid, state, EXTRACT(EPOCH FROM now() - heartbeat_at) AS heartbeat_age_s
      FROM workers WHERE name = :name
    """
)


@dataclass(frozen=True)
class Holder:
    """The process a worker's row names, as a process of that name sees it."""

    pid: int
    state: WorkerState
    heartbeat_age_s: float


def holder(conn: Connection, name: str) -> Holder | None:
    """Who holds the row of node ``name``: its pid, state and heartbeat's age (by
    PostgreSQL's clock); None when there is no row."""
    row = conn.execute(_HOLDER, {"name": name}).one_or_none()
    if row is None:
        return None
    return Holder(row.pid, WorkerState(row.state), float(row.heartbeat_age_s))


_OFFLINE = text(
    """
    UPDATE workers SET state = :offline, heartbeat_at = now()
     WHERE name = :name AND pid = :pid AND state <> :offline
    """
)


def mark_offline(conn: Connection, name: str, pid: int) -> bool:
    """The worker stopped cleanly; False if the row is not this process's."""
    params = {"name": name, "pid": pid, "offline": WorkerState.OFFLINE}
    return bool(conn.execute(_OFFLINE, params).rowcount)


_SILENT = text(
    """
    SELECT name FROM workers
     WHERE state = :online AND heartbeat_at < now() - make_interval(secs => :after_s)
     ORDER BY name
    """
)


def silent_workers(conn: Connection, lost_after_s: float) -> list[str]:
    """Online workers whose last heartbeat is older than ``lost_after_s``."""
    params = {"online": WorkerState.ONLINE, "after_s": lost_after_s}
    return [r.name for r in conn.execute(_SILENT, params)]


_MARK_LOST = text(
    """
    UPDATE workers SET state = :lost, lost_at = now()
     WHERE name = ANY(:names)
       AND state = :online AND heartbeat_at < now() - make_interval(secs => :after_s)
    RETURNING name, heartbeat_at
    """
).bindparams(bindparam("names", type_=ARRAY(Text)))


# Running steps of active runs claimed by a worker before it was marked lost, or before
# the process that now has its name started (a node killed and started again under the
# same name, as a supervisor does, before the sweep found it silent: its row was never
# lost). Told apart by the claim's time against the row's started_at, not by the name: the
# running process's own steps were all claimed after it started. Started from the
# unfinished runs, as the lease sweep is (migration 0003), then one key lookup each.
_LOST_STEPS = text(
    """
    SELECT s.run_id, s.step_id, s.attempt, s.worker, s.started_at < w.started_at AS restarted
      FROM runs r JOIN step_runs s ON s.run_id = r.id JOIN workers w ON w.name = s.worker
     WHERE r.finished_at IS NULL AND r.status IN (:queued, :running_run)
       AND s.status = :running_step
       AND (s.started_at < w.started_at OR (w.state = :lost AND s.started_at <= w.lost_at))
     ORDER BY s.started_at
     LIMIT :limit
    """
)

_STEP_STATES = {"queued": RunStatus.QUEUED, "running_run": RunStatus.RUNNING,
                "running_step": StepStatus.RUNNING, "lost": WorkerState.LOST}  # fmt: skip


def mark_lost(conn: Connection, names: list[str], lost_after_s: float) -> list[LostWorker]:
    """Mark lost those of ``names`` still online and silent for longer than
    ``lost_after_s`` (compare-and-set: a worker that beat meanwhile is spared), with the
    steps each was running."""
    params = {"lost": WorkerState.LOST, "online": WorkerState.ONLINE, "after_s": lost_after_s,
              "names": names}  # fmt: skip
    lost = {r.name: r.heartbeat_at for r in conn.execute(_MARK_LOST, params)}
    if not lost:
        return []
    steps: dict[str, list[StalledStep]] = {name: [] for name in lost}
    for orphaned in steps_of_lost_workers(conn):
        if orphaned.step.worker in steps:
            steps[orphaned.step.worker].append(orphaned.step)
    return [LostWorker(name, at, steps[name]) for name, at in sorted(lost.items())]


def steps_of_lost_workers(conn: Connection, limit: int = 1000) -> list[OrphanedStep]:
    """Steps still running under a lost worker's name, claimed before it was lost, or under
    a restarted worker's name, claimed before its present process started: a sweep that
    stopped halfway leaves them for the next one."""
    rows = conn.execute(_LOST_STEPS, {**_STEP_STATES, "limit": limit})
    return [
        OrphanedStep(StalledStep(r.run_id, r.step_id, r.attempt, r.worker), bool(r.restarted))
        for r in rows
    ]


_LIST = text(
    """
    SELECT name, pid, queues, concurrency, pool, hive_version, celery_version, started_at,
           heartbeat_at, state, lost_at
      FROM workers
     WHERE CAST(:state AS text) IS NULL OR state = :state
     ORDER BY name
     LIMIT :limit
    """
)


def list_workers(
    conn: Connection, *, state: str | None = None, limit: int = 1000
) -> list[WorkerRow]:
    """The registered workers by name, of one state or all."""
    rows = conn.execute(_LIST, {"state": state, "limit": limit})
    return [WorkerRow(**_row(r._mapping)) for r in rows]


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    row["queues"] = list(row["queues"] or [])
    return row


def step_ids(steps: list[StalledStep]) -> list[dict[str, Any]]:
    """Steps as an event's detail lists them."""
    return [{"run_id": str(s.run_id), "step_id": s.step_id, "attempt": s.attempt} for s in steps]
