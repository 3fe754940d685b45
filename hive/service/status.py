"""The farm at a glance, for the operator: ``hive status``.

The same figures the exporter serves to Prometheus (:mod:`hive.exporter`), read once and
shaped for a person: workers by state, each queue's depth and oldest waiting step, runs in
flight by status, dead letters, services by status, and when each maintenance task last
succeeded, against its interval. Farm-wide, so the operator's (``Right.INSPECT``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings

if TYPE_CHECKING:
    from hive.exporter import FarmReading


@dataclass(frozen=True)
class QueueStatus:
    name: str
    depth: int | None
    """Messages in the broker (every priority); None when Redis could not be read."""
    waiting: int
    """Steps sent and not yet started, as PostgreSQL knows them."""
    oldest_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depth": self.depth,
            "waiting": self.waiting,
            "oldest_s": round(self.oldest_s, 3),
        }


@dataclass(frozen=True)
class MaintenanceStatus:
    task: str
    interval_s: float
    last_success_age_s: float | None
    """Seconds since its last recorded run; None if it never ran."""

    @property
    def overdue(self) -> bool:
        """Not run for three of its intervals: what the alert rule pages on."""
        age = self.last_success_age_s
        return age is None or age > 3 * self.interval_s

    def to_json(self) -> dict[str, Any]:
        age = self.last_success_age_s
        return {
            "task": self.task,
            "interval_s": self.interval_s,
            "last_success_age_s": None if age is None else round(age, 3),
            "overdue": self.overdue,
        }


@dataclass(frozen=True)
class FarmStatus:
    """One look at the farm. A section whose source could not be read is None, and
    ``sources`` says which source was down."""

    sources: dict[str, bool]
    workers: dict[str, int] | None
    queues: list[QueueStatus]
    runs_in_flight: dict[str, int] | None
    """status -> runs not finished, every pipeline."""
    dead_letters: dict[str, int] | None
    """pipeline -> open dead letters."""
    services: dict[str, dict[str, int]] | None
    """service -> status -> instances."""
    maintenance: list[MaintenanceStatus] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "workers": self.workers,
            "queues": [q.to_json() for q in self.queues],
            "runs_in_flight": self.runs_in_flight,
            "dead_letters": self.dead_letters,
            "services": self.services,
            "maintenance": [m.to_json() for m in self.maintenance],
        }


@operation
def farm_status(settings: Settings, caller: Caller) -> FarmStatus:
    """Workers, queues, runs in flight, dead letters, services and maintenance, now.

    Raises:
        PermissionDenied: the caller is not the operator.
    """
    caller.require(Right.INSPECT)
    # Imported here: a producer (Client) loads neither beat's schedule nor the exporter.
    from hive.exporter import FarmReader

    reader = FarmReader(settings)
    try:
        return _shape(settings, reader.read())
    finally:
        reader.close()


def _shape(settings: Settings, reading: FarmReading) -> FarmStatus:
    from hive.beat.schedule import maintenance_intervals

    figures, depths = reading.figures, reading.depths
    queues = [
        QueueStatus(
            name=queue,
            depth=None if depths is None else sum(n for (q, _), n in depths.items() if q == queue),
            waiting=0 if figures is None else figures.waiting.get(queue, 0),
            oldest_s=0.0 if figures is None else figures.oldest_waiting_s.get(queue, 0.0),
        )
        for queue in reading.queues
    ]
    last = {} if figures is None else figures.maintenance_last_success
    # Ages by the clock that wrote the times (PostgreSQL's), whatever this host's says.
    now = 0.0 if figures is None else figures.read_at_s
    maintenance = [
        MaintenanceStatus(task, interval, None if task not in last else max(now - last[task], 0.0))
        for task, interval in maintenance_intervals(settings).items()
    ]
    if figures is None:
        return FarmStatus(
            sources={"postgresql": False, "redis": depths is not None},
            workers=None,
            queues=queues,
            runs_in_flight=None,
            dead_letters=None,
            services=None,
            maintenance=maintenance,
        )
    in_flight: dict[str, int] = {}
    for (_, status), n in figures.runs_in_flight.items():
        in_flight[status] = in_flight.get(status, 0) + n
    services: dict[str, dict[str, int]] = {}
    for (service, status), n in figures.service_instances.items():
        services.setdefault(service, {})[status] = n
    return FarmStatus(
        sources={"postgresql": True, "redis": depths is not None},
        workers=dict(figures.workers),
        queues=queues,
        runs_in_flight=in_flight,
        dead_letters=dict(figures.dead_letters),
        services=services,
        maintenance=maintenance,
    )
