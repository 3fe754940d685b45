"""``python -m bench.concurrency [--json] [--n 1000] [--concurrency 200] [--pool threads]
[--workers 1]``: many slow outside calls in flight on one worker host, Hive against raw Celery.

A slow HTTP server on loopback (``bench.slow_server``) answers every call after ``--delay-s``
(1 s). Phase 1: N one-step runs whose step makes one call to it, queued through ``hive.Client``
while a worker with ``--pool``/``--concurrency`` is paused, then the worker alone. Phase 2:
N raw Celery tasks making the same call with the same client, queued likewise on a fresh
worker of the same pool and concurrency, in the same run. ``--workers N`` runs the host as N
worker processes sharing ``--concurrency`` between them (one consumer and one GIL each), for
both phases alike. Each phase reports calls/s (first
call's start to last call's end), the worker's CPU time per call from its resume (and its
main thread's: Celery's consumer, which receives, acknowledges and publishes events), the
most calls in flight at once (the server's own peak; and the largest overlap of the calls'
running intervals), and the peak resident memory of the worker's process tree; the Hive
phase also the most sessions open on the bench database. Progress goes to stderr; the report
(or one JSON object with ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.setup import (
    BrokerClaim,
    WorkerProcess,
    bench_env,
    build_database,
    free_port,
    install_env,
    load_average,
    machine_info,
)
from bench.slow_server import SlowServerProcess
from bench.stats import rate

_WARMUP = 20
# Its own database and Redis db index, so that it can run beside bench.throughput.
DATABASE = "hive_bench_concurrency"
REDIS_DB = 12


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="runs, and raw tasks")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--pool", choices=["threads", "prefork"], default="threads")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing --concurrency"
    )
    parser.add_argument("--delay-s", type=float, default=1.0, help="the server's answer time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip-build", action="store_true", help=f"keep the {DATABASE} database")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    args = parser.parse_args(argv)
    if args.n < 1 or args.concurrency < 1 or args.delay_s <= 0:
        parser.error("--n and --concurrency must be at least 1, --delay-s above 0")
    if not 1 <= args.workers <= args.concurrency:
        parser.error("--workers must be between 1 and --concurrency")
    return args


def _phase_timeout_s(args: argparse.Namespace) -> float:
    return max(120.0, args.n / args.concurrency * args.delay_s * 10)


class Workers:
    """The host's worker processes, seen as one: paused and resumed together, their CPU time,
    memory and logs summed."""

    def __init__(self, workers: list[WorkerProcess]) -> None:
        self.members = workers

    @property
    def pid(self) -> str:
        return ",".join(str(w.pid) for w in self.members)

    def wait_ready(self, timeout_s: float) -> None:
        for worker in self.members:
            worker.wait_ready(timeout_s=timeout_s)

    def pause(self) -> None:
        for worker in self.members:
            worker.pause()

    def resume(self) -> None:
        for worker in self.members:
            worker.resume()

    def tree_rss_mb(self) -> float:
        return sum(w.tree_rss_mb() for w in self.members)

    def tree_cpu_s(self) -> float:
        return sum(w.tree_cpu_s() for w in self.members)

    def main_thread_cpu_s(self) -> float:
        return sum(w.main_thread_cpu_s() for w in self.members)

    def log_tail(self, chars: int) -> str:
        return "\n".join(w.log_tail(chars) for w in self.members)

    def stop(self) -> None:
        for worker in self.members:
            worker.stop()


class _Resumer:
    """The worker's resume, said on stderr (a profiler attached to the worker's pid can wait
    for this line); the worker's CPU time is read then, so that a phase's CPU per call is
    of the drain alone, not of the idle worker while the calls were queued."""

    def __init__(self, worker: Workers, what: str) -> None:
        self.worker = worker
        self.what = what
        self.cpu_s = 0.0
        self.main_cpu_s = 0.0

    def __call__(self) -> None:
        say(f"{self.what}: all queued, worker {self.worker.pid} resumes")
        self.cpu_s = self.worker.tree_cpu_s()
        self.main_cpu_s = self.worker.main_thread_cpu_s()
        self.worker.resume()


def _worker(args: argparse.Namespace, env: dict[str, str], log: Path) -> Workers:
    """``--workers`` processes; the first ones take one slot more when it does not divide."""
    shares = [
        args.concurrency // args.workers + (1 if i < args.concurrency % args.workers else 0)
        for i in range(args.workers)
    ]
    workers = Workers(
        [
            WorkerProcess(
                # Each its own metrics port, as each worker of a host would have.
                env if i == 0 else {**env, "HIVE_METRICS_PORT": str(free_port())},
                log.with_name(f"{log.stem}-{i}{log.suffix}"),
                concurrency=share,
                pool=args.pool,
                name=f"bench{i}",
            )
            for i, share in enumerate(shares)
        ]
    )
    try:
        concurrency = "+".join(map(str, shares))
        say(f"worker pids {workers.pid} (--pool {args.pool} --concurrency {concurrency})")
        workers.wait_ready(timeout_s=120)
    except BaseException:
        workers.stop()
        raise
    return workers


def hive_phase(
    args: argparse.Namespace, env: dict[str, str], tmp: Path, server: SlowServerProcess
) -> dict[str, Any]:
    from bench.inflight import HiveCalls, Sampler

    hive = HiveCalls(DATABASE)
    worker = _worker(args, env, tmp / "worker-hive.log")
    try:
        idle_rss = worker.tree_rss_mb()
        say(f"hive: warm-up, {_WARMUP} runs")
        hive.drain(_WARMUP, server.call_url(), _phase_timeout_s(args), worker.pause, worker.resume)
        server.reset()
        say(f"hive: {args.n} one-step runs queued, then the worker alone")
        probes = {"rss": worker.tree_rss_mb, "db": hive.connections}
        resumer = _Resumer(worker, "hive")
        with Sampler(probes) as peaks:
            phase = hive.drain(
                args.n,
                server.call_url(),
                _phase_timeout_s(args),
                worker.pause,
                resumer,
            )
        cpu_s = worker.tree_cpu_s() - resumer.cpu_s
        main_cpu_s = worker.main_thread_cpu_s() - resumer.main_cpu_s
        served = server.stats()
        errors = [line for line in worker.log_tail(50000).splitlines() if "ERROR" in line]
    finally:
        worker.stop()
        hive.close()
    return {
        "steps_per_s": rate(phase.count, phase.wall_s),
        "max_in_flight": served["peak"],
        "max_in_flight_intervals": phase.overlap,
        "worker_rss_mb": round(peaks.values["rss"], 1),
        "worker_rss_idle_mb": round(idle_rss, 1),
        "db_connections_peak": int(peaks.values["db"]),
        "worker_cpu_ms_per_step": 1000 * cpu_s / phase.count,
        "worker_main_thread_cpu_ms_per_step": 1000 * main_cpu_s / phase.count,
        "hive_submit_per_s": rate(phase.count, phase.submit_s),
        "hive_wall_s": phase.wall_s,
        "worker_errors": errors[-20:],
    }


def raw_phase(
    args: argparse.Namespace,
    env: dict[str, str],
    tmp: Path,
    server: SlowServerProcess,
    broker: BrokerClaim,
) -> dict[str, Any]:
    from bench.inflight import RawCalls, Sampler

    raw = RawCalls(broker.client)
    worker = _worker(args, env, tmp / "worker-raw.log")
    try:
        say(f"celery: warm-up, {_WARMUP} tasks")
        raw.drain(_WARMUP, server.call_url(), _phase_timeout_s(args), worker.pause, worker.resume)
        broker.reset()
        server.reset()
        say(f"celery: {args.n} raw tasks queued, then the worker alone")
        resumer = _Resumer(worker, "celery")
        with Sampler({"rss": worker.tree_rss_mb}) as peaks:
            phase = raw.drain(
                args.n,
                server.call_url(),
                _phase_timeout_s(args),
                worker.pause,
                resumer,
            )
        cpu_s = worker.tree_cpu_s() - resumer.cpu_s
        main_cpu_s = worker.main_thread_cpu_s() - resumer.main_cpu_s
        served = server.stats()
    finally:
        worker.stop()
    return {
        "celery_tasks_per_s": rate(phase.count, phase.wall_s),
        "celery_max_in_flight": served["peak"],
        "celery_max_in_flight_intervals": phase.overlap,
        "celery_worker_rss_mb": round(peaks.values["rss"], 1),
        "celery_worker_cpu_ms_per_task": 1000 * cpu_s / phase.count,
        "celery_worker_main_thread_cpu_ms_per_task": 1000 * main_cpu_s / phase.count,
        "celery_submit_per_s": rate(phase.count, phase.submit_s),
        "celery_wall_s": phase.wall_s,
        "celery_errors": phase.errors,
    }


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    return "\n".join(
        [
            f"machine: {m['nproc']} x {m['cpu_model']}, Python {m['python']}, "
            f"Celery {m['celery']}; load average before/after "
            f"{m['loadavg_1m_before']:.2f} / {m['loadavg_1m_after']:.2f}",
            f"{r['n']} calls of {r['delay_s']:g} s, {r['workers']} worker(s), --pool "
            f"{r['pool']} --concurrency {r['concurrency']} in all "
            f"(at best {r['ideal_per_s']:.0f}/s)",
            f"hive   one-step runs: {r['steps_per_s']:7.1f} steps/s, in flight at most "
            f"{r['max_in_flight']} (server) / {r['max_in_flight_intervals']} (PostgreSQL), "
            f"worker RSS {r['worker_rss_mb']:.0f} MiB (idle {r['worker_rss_idle_mb']:.0f}), "
            f"database sessions at most {r['db_connections_peak']}, worker CPU "
            f"{r['worker_cpu_ms_per_step']:.1f} ms/step (main thread "
            f"{r['worker_main_thread_cpu_ms_per_step']:.1f})",
            f"celery raw tasks:     {r['celery_tasks_per_s']:7.1f} tasks/s, in flight at most "
            f"{r['celery_max_in_flight']} (server) / {r['celery_max_in_flight_intervals']} "
            f"(stamps), worker RSS {r['celery_worker_rss_mb']:.0f} MiB, worker CPU "
            f"{r['celery_worker_cpu_ms_per_task']:.1f} ms/task (main thread "
            f"{r['celery_worker_main_thread_cpu_ms_per_task']:.1f})",
            f"ratio hive/celery:    {r['ratio']:7.2f}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hive-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        pipelines = tmp / "pipelines"
        pipelines.mkdir()
        env = bench_env(pipelines, args.redis_db, DATABASE)
        install_env(env)
        from bench.inflight import CALL, call_pipeline

        (pipelines / f"{CALL}.yaml").write_text(yaml.safe_dump(call_pipeline(), sort_keys=False))
        broker = BrokerClaim(args.redis_db)
        broker.claim()
        say(f"{'emptying' if args.skip_build else 'building'} database {DATABASE}")
        build_database(args.skip_build, DATABASE)
        load_before = load_average()
        server = SlowServerProcess(args.delay_s, log_path=tmp / "slow-server.log")
        try:
            results: dict[str, Any] = {
                "n": args.n,
                "concurrency": args.concurrency,
                "pool": args.pool,
                "workers": args.workers,
                "delay_s": args.delay_s,
                "ideal_per_s": min(args.n, args.concurrency) / args.delay_s,
            }
            results.update(hive_phase(args, env, tmp, server))
            broker.reset()
            results.update(raw_phase(args, env, tmp, server, broker))
        finally:
            server.stop()
            broker.release()
        results["ratio"] = results["steps_per_s"] / results["celery_tasks_per_s"]
        results["machine"] = machine_info(broker.client)
        results["machine"]["loadavg_1m_before"] = load_before
        results["machine"]["loadavg_1m_after"] = load_average()
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
