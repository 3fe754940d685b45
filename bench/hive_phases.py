"""Hive's side: runs submitted through ``hive.Client`` from this process, timed by PostgreSQL.

Every latency is a PostgreSQL timestamp (``now()`` in the worker's transaction) minus the
``time.time()`` taken just before the ``submit`` call; both clocks are this machine's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from bench.setup import database_url
from hive import Client

ECHO = "bench-echo"
CHAIN = "bench-chain10"
FANOUT = "bench-fanout1000"
_INPUT = {"text": "x"}
Hook = Callable[[], None]
_FAILED = ("failed", "cancelled", "expired")

_STATUS_COUNTS = text(
    "SELECT status, count(*) AS n FROM runs WHERE id = ANY(:ids) GROUP BY status"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
_RUN_STATUS = text("SELECT status FROM runs WHERE id = :id")
_TIMINGS = text(
    """
    SELECT r.id,
           extract(epoch FROM min(s.started_at))::float8 AS first_start,
           extract(epoch FROM r.finished_at)::float8 AS finished
      FROM runs r JOIN step_runs s ON s.run_id = r.id
     WHERE r.id = ANY(:ids)
     GROUP BY r.id
    """
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


@dataclass(frozen=True)
class Timings:
    """Per run, seconds from the start of its submit call."""

    start: list[float]
    """To its first step's ``started_at``."""
    finish: list[float]
    """To the run's ``finished_at``."""
    wall_s: float
    """First submit call to the last ``finished_at``."""
    submit_s: float
    """First submit call to the return of the last."""
    submit_call: list[float]
    """Per run, how long its ``submit`` call took (validate, store, publish)."""

    @classmethod
    def merged(cls, parts: list[Timings]) -> Timings:
        """Phases measured in pieces (interleaved with raw Celery's), as one."""
        return cls(
            start=[x for p in parts for x in p.start],
            finish=[x for p in parts for x in p.finish],
            wall_s=sum(p.wall_s for p in parts),
            submit_s=sum(p.submit_s for p in parts),
            submit_call=[x for p in parts for x in p.submit_call],
        )


class HiveBench:
    """Submits through Hive's client; polls on an engine of its own (no pre-ping, no Hive)."""

    def __init__(self) -> None:
        self.client = Client()
        self._db: Engine = create_engine(database_url(), pool_size=1)
        self._call_s: list[float] = []

    def close(self) -> None:
        self._db.dispose()

    def analyze(self) -> None:
        """Fresh planner statistics, taken on a quiet farm as autovacuum would take them."""
        with self._db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))

    def submit(self, pipeline: str) -> tuple[uuid.UUID, float]:
        t0 = time.time()
        run = self.client.submit(pipeline, _INPUT)
        self._call_s.append(time.time() - t0)
        return run.id, t0

    # ----------------------------------------------------------------- phases

    def burst(self, pipeline: str, count: int) -> Timings:
        """Submit ``count`` runs back to back, then wait for all of them."""
        self._call_s = []
        submitted = [self.submit(pipeline) for _ in range(count)]
        submit_end = time.time()
        self.wait_all([rid for rid, _ in submitted], timeout_s=max(120.0, count * 0.5))
        return self._timings(submitted, submit_end)

    def drain(self, pipeline: str, count: int, pause: Hook, resume: Hook) -> float:
        """Queue ``count`` runs while the worker is paused, then time the worker alone:
        seconds from the first step's start to the last ``finished_at`` (the worker takes
        up to a second to poll a queue it consumes again)."""
        pause()
        ids = [self.submit(pipeline)[0] for _ in range(count)]
        resume()
        self.wait_all(ids, timeout_s=max(120.0, count * 0.5))
        with self._db.connect() as conn:
            rows = conn.execute(_TIMINGS, {"ids": ids}).all()
        return max(r.finished for r in rows) - min(r.first_start for r in rows)

    def one_at_a_time(self, pipeline: str, count: int) -> Timings:
        """Submit ``count`` runs, each after the one before has finished (an idle farm)."""
        self._call_s = []
        submitted = []
        for _ in range(count):
            rid, t0 = self.submit(pipeline)
            self.wait_one(rid, timeout_s=60.0)
            submitted.append((rid, t0))
        return self._timings(submitted, time.time())

    def fanout(self) -> Timings:
        return self.burst(FANOUT, 1)

    # ----------------------------------------------------------------- waiting

    def wait_all(self, ids: list[uuid.UUID], timeout_s: float, poll_s: float = 0.05) -> None:
        deadline = time.monotonic() + timeout_s
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            with self._db.connect() as conn:
                counts = {r.status: r.n for r in conn.execute(_STATUS_COUNTS, {"ids": ids})}
            if any(counts.get(s) for s in _FAILED):
                raise RuntimeError(f"bench runs did not succeed: {counts}")
            if counts.get("succeeded", 0) == len(ids):
                return
            time.sleep(poll_s)
        raise TimeoutError(f"{len(ids)} runs not done after {timeout_s}s: {counts}")

    def wait_one(self, run_id: uuid.UUID, timeout_s: float, poll_s: float = 0.02) -> None:
        # Latencies come from PostgreSQL's timestamps, so the poll interval only paces the
        # next submit; 20 ms is Run.wait's default, and polling faster loads the machine the
        # worker runs on (raw Celery's side blocks in BRPOP at no cost).
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            with self._db.connect() as conn:
                status = conn.execute(_RUN_STATUS, {"id": run_id}).scalar_one()
            if status == "succeeded":
                return
            if status in _FAILED:
                raise RuntimeError(f"bench run {run_id} ended {status}")
            time.sleep(poll_s)
        raise TimeoutError(f"run {run_id} still {status} after {timeout_s}s")

    def _timings(self, submitted: list[tuple[uuid.UUID, float]], submit_end: float) -> Timings:
        sent = dict(submitted)
        with self._db.connect() as conn:
            rows = conn.execute(_TIMINGS, {"ids": list(sent)}).all()
        first = min(sent.values())
        return Timings(
            start=[r.first_start - sent[r.id] for r in rows],
            finish=[r.finished - sent[r.id] for r in rows],
            wall_s=max(r.finished for r in rows) - first,
            submit_s=submit_end - first,
            submit_call=list(self._call_s),
        )


__all__ = ["CHAIN", "ECHO", "FANOUT", "HiveBench", "Timings"]
