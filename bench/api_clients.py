"""The client processes of ``bench.api``: each submits runs, then reads each one back, either
through ``hive.Client`` (PostgreSQL and Redis directly, mode ``direct``) or through
``hive api`` over HTTP: one keep-alive ``httpx.Client`` (mode ``httpx``, as the Python client
speaks it), or one keep-alive stdlib ``http.client`` connection with the JSON written by hand
(mode ``lean``: what a producer's own lean HTTP client costs, so that the server's share
shows). Every process waits at a barrier before each part, and so does the bench's own
process, which takes the CPU snapshots (:mod:`bench.proc_cpu`) while every client waits;
each part's wall time runs from the first process's start to the last one's end
(``time.monotonic`` is one clock for every process on Linux).

The processes are spawned, not forked: each imports Hive afresh from the environment the
bench installed (see :func:`bench.setup.install_env`).
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from threading import BrokenBarrierError
from typing import Any, TypeVar

from bench.proc_cpu import ROLES, CpuWatch, Snapshot, spent

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
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.calls) / self.wall_s

    def cpu_ms_per_call(self) -> dict[str, float]:
        """CPU milliseconds a call, by role (:data:`bench.proc_cpu.ROLES`), and in all."""
        per = {role: self.cpu_s.get(role, 0.0) * 1000 / len(self.calls) for role in ROLES}
        per["all"] = sum(per.values())
        return per

    @classmethod
    def of(cls, timings: list[tuple[float, float, list[float]]], cpu_s: dict[str, float]) -> Part:
        """From each process's (first start, last end, call durations)."""
        return cls(
            [call for *_, calls in timings for call in calls],
            max(end for _, end, _ in timings) - min(start for start, _, _ in timings),
            cpu_s,
        )

    @classmethod
    def merged(cls, parts: list[Part]) -> Part:
        """Parts run at different times, as one: every call, the walls and CPU summed."""
        return cls(
            [c for one in parts for c in one.calls],
            sum(one.wall_s for one in parts),
            {role: sum(one.cpu_s.get(role, 0.0) for one in parts) for role in ROLES},
        )


@dataclass
class Phase:
    submits: Part
    reads: Part

    @classmethod
    def merged(cls, slices: list[Phase]) -> Phase:
        """Slices run at different times, as one phase."""
        return cls(
            Part.merged([one.submits for one in slices]), Part.merged([one.reads for one in slices])
        )


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
    _phase(count, barrier, results, lambda: client.submit(PIPELINE, INPUT).id, client.get)


def _phase(
    count: int,
    barrier: Barrier,
    results: Any,
    submit: Callable[[], Any],
    read: Callable[[Any], object],
) -> None:
    """What every client process does: warm up, then ``count`` submits one after another,
    then a read of each run, each part between the bench's snapshots; its timings go to
    ``results``."""
    for _ in range(_WARMUP):
        read(submit())
    ids: list[Any] = []
    _start(barrier)
    submitted = _timed(lambda _: ids.append(submit()), [0] * count)
    _between(barrier)
    read_back = _timed(read, ids)
    barrier.wait()
    results.put((submitted, read_back))


def _start(barrier: Barrier) -> None:
    """Warmed up: wait for every process, then for the bench's snapshot."""
    barrier.wait()
    barrier.wait()


def _between(barrier: Barrier) -> None:
    """Submits done: wait for every process and the bench's snapshot, then read."""
    barrier.wait()
    barrier.wait()


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

        _phase(count, barrier, results, submit, read)


def _lean(count: int, barrier: Barrier, results: Any, base_url: str, key: str) -> None:
    """As :func:`_http`, through one keep-alive ``http.client`` connection: the request
    written from bytes made once, the answer's JSON parsed for the run's id only."""
    import http.client
    import json
    from urllib.parse import urlsplit

    where = urlsplit(base_url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30.0)
    body = json.dumps({"pipeline": PIPELINE, "input": INPUT}).encode()
    post_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    get_headers = {"Authorization": f"Bearer {key}"}

    def submit() -> str:
        conn.request("POST", "/v1/runs", body=body, headers=post_headers)
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 202:
            raise RuntimeError(f"POST /v1/runs: {answer.status} {data[:300]!r}")
        return str(json.loads(data)["id"])

    def read(run_id: str) -> None:
        conn.request("GET", f"/v1/runs/{run_id}", headers=get_headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET /v1/runs/{{id}}: {answer.status}")

    try:
        _phase(count, barrier, results, submit, read)
    finally:
        conn.close()


MODES = {"direct": _direct, "httpx": _http, "lean": _lean}


def _abort_if_one_dies(procs: list[Any], barrier: Barrier, over: threading.Event) -> None:
    """Break the barrier as soon as a client process fails (the others, and this process,
    would wait at it for ``_JOIN_S``)."""
    while not over.wait(0.5):
        if any(proc.exitcode not in (None, 0) for proc in procs):
            barrier.abort()
            return


def run_phase(
    processes: int, total: int, mode: str, base_url: str, key: str, watch: CpuWatch
) -> Phase:
    """``total`` submits (then as many reads) split over ``processes`` processes, in
    ``mode`` (:data:`MODES`); ``watch`` measures each part's CPU by role."""
    ctx = multiprocessing.get_context("spawn")
    # The clients and this process, which snapshots CPU while they wait.
    barrier = ctx.Barrier(processes + 1, timeout=_JOIN_S)
    results = ctx.Queue()
    shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
    procs = [
        ctx.Process(
            target=MODES[mode],
            args=(share, barrier, results, *(() if mode == "direct" else (base_url, key))),
            name=f"bench-api-client-{i}",
        )
        for i, share in enumerate(shares)
    ]
    for proc in procs:
        proc.start()
    pids = [proc.pid for proc in procs if proc.pid is not None]
    snaps: list[Snapshot] = []
    over = threading.Event()
    threading.Thread(target=_abort_if_one_dies, args=(procs, barrier, over), daemon=True).start()
    try:
        for _ in range(2):  # before the submits, then between submits and reads
            barrier.wait()
            snaps.append(watch.snapshot(pids))
            barrier.wait()
        barrier.wait()
        snaps.append(watch.snapshot(pids))
    except BrokenBarrierError:
        pass  # a client died: told below
    finally:
        over.set()
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
    if failed or got < processes or len(snaps) < 3:
        raise RuntimeError(
            f"{processes - got} client processes did not answer (exit codes {failed})"
        )
    return Phase(
        Part.of(submitted, spent(snaps[0], snaps[1])), Part.of(read, spent(snaps[1], snaps[2]))
    )
