"""The client processes of ``bench.api``: each submits runs, then reads each one back, either
through ``hive.Client`` (PostgreSQL and Redis directly) or through ``hive api`` over HTTP
(one keep-alive ``httpx.Client``). Every process waits at a barrier before each part, so
all of them start it together; each part's wall time runs from the first process's start to
the last one's end (``time.monotonic`` is one clock for every process on Linux).

The processes are spawned, not forked: each imports Hive afresh from the environment the
bench installed (see :func:`bench.setup.install_env`).
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Any, TypeVar

PIPELINE = "bench-echo"
TENANT = "bench"
INPUT = {"text": "hello"}
_WARMUP = 5
_JOIN_S = 600.0
T = TypeVar("T")


@dataclass
class Part:
    """One part (submits or reads) of a phase: each call's duration, and the wall time from
    the first process's start to the last one's end (summed over slices), in seconds."""

    calls: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.calls) / self.wall_s

    @classmethod
    def of(cls, timings: list[tuple[float, float, list[float]]]) -> Part:
        """From each process's (first start, last end, call durations)."""
        return cls(
            [call for *_, calls in timings for call in calls],
            max(end for _, end, _ in timings) - min(start for start, _, _ in timings),
        )


@dataclass
class Phase:
    submits: Part
    reads: Part

    @classmethod
    def merged(cls, slices: list[Phase]) -> Phase:
        """Slices run at different times, as one phase: every call, the walls summed."""
        return cls(
            Part([c for one in slices for c in one.submits.calls],
                 sum(one.submits.wall_s for one in slices)),
            Part([c for one in slices for c in one.reads.calls],
                 sum(one.reads.wall_s for one in slices)),
        )  # fmt: skip


def _timed(call: Callable[[T], object], items: list[T]) -> tuple[float, float, list[float]]:
    """``call`` on each item, one after another: first start, last end, each call's time."""
    durations = []
    first = time.monotonic()
    for item in items:
        began = time.monotonic()
        call(item)
        durations.append(time.monotonic() - began)
    return first, time.monotonic(), durations


def _direct(count: int, barrier: Barrier, results: Any) -> None:
    from hive import Client

    client = Client(tenant=TENANT)
    for _ in range(_WARMUP):
        client.get(client.submit(PIPELINE, INPUT).id)
    ids: list[Any] = []
    barrier.wait()
    submitted = _timed(lambda _: ids.append(client.submit(PIPELINE, INPUT).id), [0] * count)
    barrier.wait()
    read = _timed(client.get, ids)
    results.put((submitted, read))


def _http(count: int, barrier: Barrier, results: Any, base_url: str, key: str) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as http:

        def submit() -> str:
            answer = http.post("/v1/runs", json={"pipeline": PIPELINE, "input": INPUT})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /v1/runs: {answer.status_code} {answer.text[:300]}")
            return str(answer.json()["id"])

        def read(run_id: str) -> None:
            answer = http.get(f"/v1/runs/{run_id}")
            if answer.status_code != 200:
                raise RuntimeError(f"GET /v1/runs/{{id}}: {answer.status_code}")

        for _ in range(_WARMUP):
            read(submit())
        ids: list[str] = []
        barrier.wait()
        submitted = _timed(lambda _: ids.append(submit()), [0] * count)
        barrier.wait()
        read_back = _timed(read, ids)
    results.put((submitted, read_back))


def run_phase(processes: int, total: int, base_url: str | None, key: str | None) -> Phase:
    """``total`` submits (then as many reads) split over ``processes`` processes: directly
    when ``base_url`` is None, else over HTTP with ``key``."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes, timeout=_JOIN_S)
    results = ctx.Queue()
    shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=_direct if base_url is None else _http,
            args=(share, barrier, results, *(() if base_url is None else (base_url, key))),
            name=f"bench-api-client-{i}",
        )
        for i, share in enumerate(shares)
    ]
    for proc in procs:
        proc.start()
    submitted: list[tuple[float, float, list[float]]] = []
    read: list[tuple[float, float, list[float]]] = []
    deadline = time.monotonic() + _JOIN_S
    got = 0
    try:
        while got < processes:
            try:
                submits, reads = results.get(timeout=1.0)
            except queue.Empty:
                # A process that died before answering would leave the others at the barrier.
                if any(p.exitcode not in (None, 0) for p in procs) or time.monotonic() > deadline:
                    break
                continue
            submitted.append(submits)
            read.append(reads)
            got += 1
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                print(f"client process {proc.pid} still running: terminating it", file=sys.stderr)
                proc.terminate()
                proc.join(timeout=5)
    failed = [proc.exitcode for proc in procs if proc.exitcode != 0]
    if failed or got < processes:
        raise RuntimeError(
            f"{processes - got} client processes did not answer (exit codes {failed})"
        )
    return Phase(Part.of(submitted), Part.of(read))
