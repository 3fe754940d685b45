"""``hive exporter``: the farm-wide figures, read from PostgreSQL and Redis on each scrape.

No worker has to report them, and they stay true when no worker runs at all: runs in flight,
queue depths (per priority), the age of each queue's oldest waiting step, open dead
letters, when each maintenance task last succeeded, services' instances and workers by
status, the state of every circuit breaker (kept in Redis, so it holds across every
worker), ``hive_runs_total``, the runs closed by anyone, and ``hive_purged_total``, the
rows retention deleted (counters PostgreSQL keeps: see ``hive.metrics.FARM_COUNTERS``).
A source that cannot be read is reported as ``hive_exporter_source_up{source} 0`` and its
figures are left out of that scrape; the exporter itself keeps serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hive import keys, metrics
from hive.agents.registry import default_registry
from hive.beat.schedule import maintenance_intervals
from hive.db.figures import FarmFigures, read_figures
from hive.db.retrying import in_transaction
from hive.errors import HiveError
from hive.guard import Breakers, gauge_value, load_policy
from hive.guard.store import unavailable
from hive.settings import Settings

logger = logging.getLogger(__name__)

_REDIS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FarmReading:
    """What one look at the farm found. A source that could not be read is None."""

    figures: FarmFigures | None
    """From PostgreSQL."""
    depths: dict[tuple[str, str], int] | None
    """(queue, priority) -> messages in the broker, from Redis."""
    queues: list[str]
    """Every queue looked at."""
    breakers: dict[tuple[str, str], int] | None = None
    """(kind, name) -> ``hive_breaker_state`` (0 closed, 1 half-open, 2 open), from Redis."""


class FarmReader:
    """Reads the farm-wide figures from PostgreSQL and the queue depths from Redis, keeping
    one Redis client between readings. Shared by the exporter and ``hive status``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._redis: redis.Redis | None = None

    def read(self) -> FarmReading:
        figures: FarmFigures | None = None
        try:
            figures = in_transaction(lambda c: read_figures(c, keys.DEFAULT_QUEUE), retry_s=0)
        except HiveError as exc:
            logger.warning("farm figures: cannot read PostgreSQL: %s", exc)
        queues = self._queues(figures)
        depths = self._depths(queues)
        return FarmReading(
            figures, depths, queues, self._breakers() if depths is not None else None
        )

    def _breakers(self) -> dict[tuple[str, str], int] | None:
        """Every breaker the limits file declares or Redis holds state of; None if Redis
        cannot be read. A limits file that cannot be read leaves out only the breakers it declares
        that never had state."""
        declared: list[str] = []
        path = self._settings.guard.limits_file
        if path is not None:
            try:
                declared = load_policy(path).breaker_names()
            except HiveError as exc:
                logger.warning("breakers: %s", exc)
        try:
            store = Breakers(self._client())
            states = store.read(sorted(set(declared) | store.known()))
        except HiveError as exc:
            logger.warning("breakers: cannot read Redis: %s", exc)
            return None
        # A name the file does not declare has a series only while Redis keeps its state:
        # with the default's places bounded, so are the series (hive/guard/breakers.py).
        return {
            (name.partition(":")[0], name.partition(":")[2]): gauge_value(state)
            for name, state in states.items()
            if state.kept or name in declared
        }

    def _queues(self, figures: FarmFigures | None) -> list[str]:
        """Every queue an installed agent uses, Hive's own, and any a waiting step names (a
        pipeline may route a step elsewhere)."""
        names = {keys.DEFAULT_QUEUE, keys.MAINTENANCE_QUEUE}
        names.update(keys.agent_queue(a.options.queue) for a in default_registry().all())
        if figures is not None:
            names.update(figures.waiting)
        return sorted(names)

    def _depths(self, queues: list[str]) -> dict[tuple[str, str], int] | None:
        """(queue, priority) -> messages in the broker; None if Redis cannot be read."""
        by_step = {step: name for name, step in keys.PRIORITIES.items()}
        lists = [(q, p, keys.priority_list(q, s)) for q in queues for s, p in by_step.items()]
        try:
            # Reset on leaving, not by its __del__ whenever the collector runs.
            with self._client().pipeline(transaction=False) as pipe:
                for _, _, key in lists:
                    pipe.llen(key)
                lengths = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            # Named by its setting, as the PostgreSQL half is (redis-py's words hold no password).
            logger.warning("farm figures: cannot read Redis: %s", unavailable(exc))
            self._redis = None
            return None
        # A key holding something else (WRONGTYPE) holds no message.
        return {
            (q, p): n if isinstance(n, int) else 0
            for (q, p, _), n in zip(lists, lengths, strict=True)
        }

    def close(self) -> None:
        """Close the Redis client (the next reading opens another)."""
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self._settings.broker.url.get_secret_value(),
                socket_timeout=_REDIS_TIMEOUT_S,
                socket_connect_timeout=_REDIS_TIMEOUT_S,
            )
        return self._redis


class FarmCollector(Collector):
    """A prometheus-client collector that reads the figures afresh on every ``collect``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._reader = FarmReader(settings)

    def describe(self) -> Iterable[Any]:
        return []  # registering must not query the servers

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        began = time.perf_counter()
        reading = self._reader.read()
        figures, depths, queues = reading.figures, reading.depths, reading.queues
        yield _family(metrics.EXPORTER_UP, [(("postgresql",), float(figures is not None)),
                                            (("redis",), float(depths is not None))])  # fmt: skip
        if figures is not None:
            yield _family(
                metrics.RUNS_IN_FLIGHT, [(k, float(n)) for k, n in figures.runs_in_flight.items()]
            )
            yield _family(
                metrics.QUEUE_OLDEST,
                [((q,), figures.oldest_waiting_s.get(q, 0.0)) for q in queues],
            )
            yield _family(
                metrics.DEAD_LETTERS, [((p,), float(n)) for p, n in figures.dead_letters.items()]
            )
            yield _family(
                metrics.MAINTENANCE_LAST_SUCCESS,
                [((t,), s) for t, s in figures.maintenance_last_success.items()],
            )
            yield _family(
                metrics.SERVICE_INSTANCES,
                [(k, float(n)) for k, n in figures.service_instances.items()],
            )
            yield _family(metrics.WORKERS, [((s,), float(n)) for s, n in figures.workers.items()])
            yield _family(
                metrics.APPROVALS_PENDING,
                [((p,), float(n)) for p, n in figures.approvals_pending.items()],
            )
            yield _family(
                metrics.APPROVALS_OLDEST,
                [((p,), s) for p, s in figures.approvals_oldest_s.items()],
            )
            yield _counter(
                metrics.RUNS_CLOSED, [(k, float(n)) for k, n in figures.runs_closed.items()]
            )
            # Every kind, 0 included: rate() needs the series before the first purge.
            purged = dict.fromkeys(metrics.PURGE_KINDS, 0) | figures.purged
            yield _counter(metrics.PURGED, [((k,), float(n)) for k, n in purged.items()])
        yield _family(
            metrics.MAINTENANCE_INTERVAL,
            [((t,), s) for t, s in maintenance_intervals(self._settings).items()],
        )
        if depths is not None:
            yield _family(metrics.QUEUE_DEPTH, [(k, float(n)) for k, n in depths.items()])
        if reading.breakers is not None:
            yield _family(
                metrics.BREAKER_STATE, [(k, float(v)) for k, v in reading.breakers.items()]
            )
        yield _family(metrics.EXPORTER_SCRAPE, [((), time.perf_counter() - began)])


def _family(name: str, samples: list[tuple[tuple[str, ...], float]]) -> GaugeMetricFamily:
    help_text, labels = metrics.FARM_FIGURES[name]
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def _counter(name: str, samples: list[tuple[tuple[str, ...], float]]) -> CounterMetricFamily:
    help_text, labels = metrics.FARM_COUNTERS[name]
    # prometheus-client adds the _total back when it writes the samples.
    family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def farm_registry(settings: Settings) -> CollectorRegistry:
    """A registry holding the farm's figures alone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FarmCollector(settings))
    return registry
