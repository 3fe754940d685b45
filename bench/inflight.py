"""The phases of ``bench.concurrency``: N one-step runs that each make one slow HTTP call,
and N raw Celery tasks making the same call; what the worker's process tree and PostgreSQL
hold meanwhile.

The most calls in flight at once is read two ways: the slow server's own peak of calls it
held at once, and the largest overlap of the calls' running intervals (PostgreSQL's
``started_at``/``finished_at`` of each step, or the raw task's own stamps).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from bench.keys import FETCH_TASK, stamp_key
from bench.setup import database_url
from hive import Client
from hive.keys import DEFAULT_QUEUE, PRIORITIES
from hive.tasks.app import app

CALL = "bench-call"
# The one step of bench-call: the built-in http agent, one GET.
CALL_STEP = {"id": "call", "agent": "http", "input": {"url": "$input.url"}}

_INTERVALS = text(
    """
    SELECT extract(epoch FROM s.started_at)::float8 AS started,
           extract(epoch FROM s.finished_at)::float8 AS finished
      FROM step_runs s WHERE s.run_id = ANY(:ids)
    """
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
_STATUS_COUNTS = text(
    "SELECT status, count(*) AS n FROM runs WHERE id = ANY(:ids) GROUP BY status"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
_CONNECTIONS = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")


def call_pipeline() -> dict[str, object]:
    return {
        "name": CALL,
        "version": 1,
        "input_schema": {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string"}},
        },
        "steps": [CALL_STEP],
    }


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals ``(start, end)`` open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = current = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        current += step
        most = max(most, current)
    return most


@dataclass
class Peaks:
    """The largest value each probe returned while sampling."""

    values: dict[str, float] = field(default_factory=dict)


class Sampler:
    """Calls each probe every ``every_s`` on a thread of its own, keeping each one's peak."""

    def __init__(self, probes: dict[str, Callable[[], float]], every_s: float = 0.1) -> None:
        self._probes = probes
        self._every_s = every_s
        self._stop = threading.Event()
        self.peaks = Peaks()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self.peaks

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            for name, probe in self._probes.items():
                value = probe()
                self.peaks.values[name] = max(self.peaks.values.get(name, 0.0), value)
            if self._stop.wait(self._every_s):
                return


Hook = Callable[[], None]


@dataclass(frozen=True)
class Phase:
    count: int
    wall_s: float
    """The worker alone: from the first call's start to the last call's end."""
    submit_s: float
    """Submitting (or sending) every run (or task) while the worker was paused."""
    overlap: int
    """The most calls whose running intervals overlap."""
    errors: int = 0
    """Raw tasks whose call failed (a step's failed attempt is retried instead)."""


class HiveCalls:
    """Runs of bench-call submitted through Hive's client; timed by PostgreSQL."""

    def __init__(self, database: str) -> None:
        self.client = Client()
        self.database = database
        self._db: Engine = create_engine(database_url(database), pool_size=1)

    def close(self) -> None:
        self._db.dispose()

    def connections(self) -> float:
        """Sessions open on the bench database (the worker's, and this process's two)."""
        with self._db.connect() as conn:
            return float(conn.execute(_CONNECTIONS, {"db": self.database}).scalar_one())

    def drain(self, count: int, url: str, timeout_s: float, pause: Hook, resume: Hook) -> Phase:
        """``count`` runs queued while the worker is paused, then the worker alone."""
        pause()
        first = time.time()
        ids = [self.client.submit(CALL, {"url": url}).id for _ in range(count)]
        submit_s = time.time() - first
        resume()
        self._wait_all(ids, timeout_s)
        with self._db.connect() as conn:
            intervals = [(r.started, r.finished) for r in conn.execute(_INTERVALS, {"ids": ids})]
        return Phase(
            count=count,
            wall_s=max(e for _, e in intervals) - min(s for s, _ in intervals),
            submit_s=submit_s,
            overlap=max_overlap(intervals),
        )

    def _wait_all(self, ids: list[uuid.UUID], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            with self._db.connect() as conn:
                counts = {r.status: r.n for r in conn.execute(_STATUS_COUNTS, {"ids": ids})}
            if any(counts.get(s) for s in ("failed", "cancelled", "expired")):
                raise RuntimeError(f"bench runs did not succeed: {counts}")
            if counts.get("succeeded", 0) == len(ids):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{len(ids)} runs not done after {timeout_s}s: {counts}")


class RawCalls:
    """``bench.fetch`` tasks sent as Hive sends a step: the default queue, normal priority."""

    def __init__(self, broker: redis.Redis) -> None:
        self.redis = broker

    def drain(self, count: int, url: str, timeout_s: float, pause: Hook, resume: Hook) -> Phase:
        """``count`` tasks queued while the worker is paused, then the worker alone."""
        key = stamp_key("fetch")
        pause()
        first = time.time()
        for tag in range(count):
            app.signature(
                FETCH_TASK,
                args=(key, tag, url),
                immutable=True,
                queue=DEFAULT_QUEUE,
                priority=PRIORITIES["normal"],
            ).apply_async()
        submit_s = time.time() - first
        resume()
        deadline = time.monotonic() + timeout_s
        while self.redis.llen(key) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.redis.llen(key)}/{count} calls after {timeout_s}s")
            time.sleep(0.1)
        stamps = [json.loads(raw) for raw in self.redis.lrange(key, 0, -1)]
        intervals = [(float(s), float(e)) for _, s, e, _ in stamps]
        return Phase(
            count=count,
            wall_s=max(e for _, e in intervals) - min(s for s, _ in intervals),
            submit_s=submit_s,
            overlap=max_overlap(intervals),
            errors=sum(1 for *_, error in stamps if error),
        )
