"""Workers in the registry, as the operator sees them: ``hive workers list``.

Which hosts run the farm, their queues and pools, is the farm's business, not a tenant's:
listing workers is the operator's (``Right.INSPECT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hive.db import workers as registry
from hive.db.figures import database_now
from hive.db.retrying import in_transaction
from hive.errors import InvalidArgument
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings
from hive.statuses import WorkerState


@dataclass(frozen=True)
class WorkerView:
    """A worker as it registered itself and as its heartbeats left it."""

    name: str
    state: str
    pid: int
    queues: list[str]
    concurrency: int
    pool: str
    hive_version: str
    celery_version: str
    started_at: datetime
    heartbeat_at: datetime
    lost_at: datetime | None
    """When it was last found gone without stopping: marked lost, or (online again) the
    earlier run of this node it replaced had never stopped. None after a clean stop."""
    heartbeat_age_s: float = 0.0
    """Seconds since the last heartbeat by PostgreSQL's clock, which wrote it (a host's own
    clock may be off)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "pool": self.pool,
            "hive_version": self.hive_version,
            "celery_version": self.celery_version,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "lost_at": self.lost_at.isoformat() if self.lost_at else None,
            "heartbeat_age_s": round(self.heartbeat_age_s, 3),
        }


@operation
def list_workers(
    settings: Settings, caller: Caller, *, state: WorkerState | str | None = None
) -> list[WorkerView]:
    """Every registered worker by name, or those in ``state`` (online, offline, lost).

    Raises:
        PermissionDenied: the caller is not the operator.
        InvalidArgument: ``state`` is not a worker state.
    """
    caller.require(Right.INSPECT)
    wanted = _state(state)
    rows, now = in_transaction(
        lambda conn: (registry.list_workers(conn, state=wanted), database_now(conn)), retry_s=0
    )
    return [
        WorkerView(
            name=r.name,
            state=r.state,
            pid=r.pid,
            queues=r.queues,
            concurrency=r.concurrency,
            pool=r.pool,
            hive_version=r.hive_version,
            celery_version=r.celery_version,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            lost_at=r.lost_at,
            heartbeat_age_s=max(now - r.heartbeat_at.timestamp(), 0.0),
        )
        for r in rows
    ]


def _state(state: WorkerState | str | None) -> WorkerState | None:
    if state is None:
        return None
    try:
        return WorkerState(state)
    except ValueError:
        known = ", ".join(s.value for s in WorkerState)
        raise InvalidArgument([f"state: {state!r} is not a worker state ({known})"]) from None
