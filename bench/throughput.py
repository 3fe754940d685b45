"""``python -m bench.throughput [--n N] [--json] [--skip-build]``: Hive against raw Celery.

One worker (``--concurrency 2 --pool prefork``, serving its metrics), one broker, one run,
five phases: N single-step runs at once; 200 single-step runs one at a time (idle start
latency); N/10 ten-step chains one at a time and then at once; one fan-out of 1000; and the
same shapes as raw Celery tasks. Then a second worker with its metrics off
(``HIVE_METRICS_PORT=0``) runs phases 1 and 1b again: what metrics cost. In the
one-at-a-time phases each Hive run is followed by its raw Celery twin, so both see the same
background load. Progress goes to stderr; the report (or one JSON object with ``--json``) to
stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.setup import (
    CHAIN_LENGTH,
    DEFAULT_REDIS_DB,
    FANOUT_WIDTH,
    BrokerClaim,
    WorkerProcess,
    bench_env,
    build_database,
    install_env,
    load_average,
    machine_info,
    write_pipelines,
)
from bench.stats import p50_p99_ms, rate

if TYPE_CHECKING:  # imported at run time only once the environment is set (see run_phases)
    from bench.hive_phases import Timings
    from bench.raw_phases import RawTimings

T = TypeVar("T")
_WARMUP = 20


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def alternate(
    count: int, hive_once: Callable[[], Timings], raw_once: Callable[[], RawTimings]
) -> tuple[Timings, RawTimings]:
    """``count`` times: one Hive measurement, then its raw Celery twin."""
    from bench.hive_phases import Timings
    from bench.raw_phases import RawTimings

    hive_parts: list[Timings] = []
    raw_parts: list[RawTimings] = []
    for _ in range(count):
        hive_parts.append(hive_once())
        raw_parts.append(raw_once())
    return Timings.merged(hive_parts), RawTimings.merged(raw_parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="runs/tasks in the load phases")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--skip-build",
        action="store_true",
        help="keep the hive_bench database (migrate and empty it) instead of re-creating it",
    )
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="skip the ANALYZE before each phase (plans then follow whatever autovacuum saw)",
    )
    parser.add_argument("--idle-samples", type=int, default=200)
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    args = parser.parse_args(argv)
    if args.n < 10:
        parser.error("--n must be at least 10")
    return args


def run_phases(
    args: argparse.Namespace, broker: BrokerClaim, worker: WorkerProcess
) -> dict[str, Any]:
    # Imported only now: Hive reads its settings from the environment once.
    from bench.hive_phases import CHAIN, ECHO, HiveBench
    from bench.raw_phases import RawBench

    hive, raw = HiveBench(), RawBench(broker.client)
    chains = max(1, args.n // 10)
    recycled: dict[str, int] = {}

    def phase(name: str, body: Callable[[], T]) -> T:
        broker.reset()
        if args.analyze:
            hive.analyze()
        before = set(worker.pool_pids())
        say(name)
        result = body()
        recycled[name] = len(set(worker.pool_pids()) - before)
        return result

    # Each Hive phase is followed by its raw Celery twin, so that both see the same
    # background load and the same point in the worker's life.
    try:
        phase("warm-up", lambda: (hive.burst(ECHO, _WARMUP), raw.burst(_WARMUP)))
        load = phase(f"1. {args.n} single-step runs at once", lambda: hive.burst(ECHO, args.n))
        raw_load = phase(f"5. raw: {args.n} stamp tasks at once", lambda: raw.burst(args.n))
        raw_noop_s = phase(f"5. raw: {args.n} noop tasks at once", lambda: raw.noop_burst(args.n))
        drain_s = phase(
            f"1b. {args.n} single-step runs queued, then the worker alone",
            lambda: hive.drain(ECHO, args.n, worker.pause, worker.resume),
        )
        raw_drain_s = phase(
            f"5. raw: {args.n} stamp tasks queued, then the worker alone",
            lambda: raw.drain(args.n, worker.pause, worker.resume),
        )
        # One at a time, Hive and raw Celery take turns: a drift in background load over
        # the phase then falls on both alike.
        idle, raw_idle = phase(
            f"2. {args.idle_samples} single-step runs one at a time, each followed by a raw "
            "stamp task",
            lambda: alternate(
                args.idle_samples,
                lambda: hive.one_at_a_time(ECHO, 1),
                lambda: raw.one_at_a_time(1),
            ),
        )
        chain_seq, raw_chain = phase(
            f"3. {chains} chain10 runs one at a time, each followed by a raw chain of 10",
            lambda: alternate(chains, lambda: hive.one_at_a_time(CHAIN, 1), lambda: raw.chains(1)),
        )
        chain_load = phase(f"3b. {chains} chain10 runs at once", lambda: hive.burst(CHAIN, chains))
        raw_chain_load = phase(
            f"5. raw: {chains} chains of 10 at once", lambda: raw.chain_burst(chains)
        )
        fanout = phase("4. one fan-out of 1000", hive.fanout)
    finally:
        hive.close()

    hive_sps = rate(args.n, load.wall_s)
    celery_tps = rate(args.n, raw_load.wall_s)
    single_step_ms = 1000 / hive_sps
    fanout_steps = FANOUT_WIDTH + 1
    idle_p50, idle_p99 = p50_p99_ms(idle.start)
    loaded_p50, loaded_p99 = p50_p99_ms(load.start)
    run_p50, run_p99 = p50_p99_ms(load.finish)
    chain_p50, chain_p99 = p50_p99_ms(chain_seq.finish)
    celery_chain_p50, celery_chain_p99 = p50_p99_ms(raw_chain.start)
    celery_idle_p50, celery_idle_p99 = p50_p99_ms(raw_idle.start)
    celery_loaded_p50, celery_loaded_p99 = p50_p99_ms(raw_load.start)
    return {
        "n": args.n,
        "hive_steps_per_s": hive_sps,
        "hive_submit_per_s": rate(args.n, load.submit_s),
        "celery_tasks_per_s": celery_tps,
        "celery_noop_tasks_per_s": rate(args.n, raw_noop_s),
        "ratio": hive_sps / celery_tps,
        "hive_drain_steps_per_s": rate(args.n, drain_s),
        "celery_drain_tasks_per_s": rate(args.n, raw_drain_s),
        "drain_ratio": raw_drain_s / drain_s,
        "start_latency_p50_ms": idle_p50,
        "start_latency_p99_ms": idle_p99,
        "idle_run_latency_p50_ms": p50_p99_ms(idle.finish)[0],
        "idle_submit_call_p50_ms": p50_p99_ms(idle.submit_call)[0],
        "loaded_start_latency_p50_ms": loaded_p50,
        "loaded_start_latency_p99_ms": loaded_p99,
        "run_latency_p50_ms": run_p50,
        "run_latency_p99_ms": run_p99,
        "celery_start_latency_p50_ms": celery_idle_p50,
        "celery_start_latency_p99_ms": celery_idle_p99,
        "celery_loaded_start_latency_p50_ms": celery_loaded_p50,
        "celery_loaded_start_latency_p99_ms": celery_loaded_p99,
        "chain10_runs": chains,
        "chain10_latency_p50_ms": chain_p50,
        "chain10_latency_p99_ms": chain_p99,
        "celery_chain10_latency_p50_ms": celery_chain_p50,
        "celery_chain10_latency_p99_ms": celery_chain_p99,
        "chain10_ratio": chain_p50 / celery_chain_p50,
        "chain10_steps_per_s": rate(chains * CHAIN_LENGTH, chain_load.wall_s),
        "celery_chain10_tasks_per_s": rate(chains * CHAIN_LENGTH, raw_chain_load.wall_s),
        "fanout1000_s": fanout.wall_s,
        "fanout_per_step_ms": fanout.wall_s * 1000 / fanout_steps,
        "single_step_ms": single_step_ms,
        "analyzed": args.analyze,
        "pool_processes_replaced": recycled,
    }


def metrics_off_phases(
    args: argparse.Namespace, broker: BrokerClaim, env: dict[str, str], log_path: Path
) -> dict[str, Any]:
    """Phases 1 and 1b again, on a worker whose metrics are off."""
    from bench.hive_phases import ECHO, HiveBench

    worker = WorkerProcess({**env, "HIVE_METRICS_PORT": "0"}, log_path)
    hive = HiveBench()
    try:
        worker.wait_ready()
        broker.reset()
        say("6. metrics off: warm-up")
        hive.burst(ECHO, _WARMUP)
        broker.reset()
        if args.analyze:
            hive.analyze()
        say(f"6. metrics off: {args.n} single-step runs at once")
        load = hive.burst(ECHO, args.n)
        broker.reset()
        if args.analyze:
            hive.analyze()
        say(f"6b. metrics off: {args.n} single-step runs queued, then the worker alone")
        drain_s = hive.drain(ECHO, args.n, worker.pause, worker.resume)
    finally:
        hive.close()
        worker.stop()
    return {
        "metrics_off_steps_per_s": rate(args.n, load.wall_s),
        "metrics_off_drain_steps_per_s": rate(args.n, drain_s),
    }


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The spec's targets, each with the figure it is judged on."""
    checks = {
        "single-step runs >= 40% of raw Celery tasks/s (aim 60%)": (r["ratio"], ">=", 0.40),
        "p50 submit->first-step-start <= 5 ms (idle farm)": (r["start_latency_p50_ms"], "<=", 5.0),
        "chain of 10 within 1.5x raw Celery chain of 10": (r["chain10_ratio"], "<=", 1.5),
        "fan-out 1000 per step <= single-step run per step": (
            r["fanout_per_step_ms"],
            "<=",
            r["single_step_ms"],
        ),
        "metrics cost <= 5% of the worker-alone throughput": (r["metrics_cost"], "<=", 0.05),
    }
    return {
        name: {"value": value, "target": f"{op} {bound:.3g}", "met": _holds(value, op, bound)}
        for name, (value, op, bound) in checks.items()
    }


def _holds(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


def report(r: dict[str, Any]) -> str:
    lines = [
        f"machine: {r['machine']['nproc']} x {r['machine']['cpu_model']}, "
        f"Python {r['machine']['python']}, Celery {r['machine']['celery']}",
        f"n = {r['n']}; 1-min load average before/after "
        f"{r['machine']['loadavg_1m_before']:.2f} / {r['machine']['loadavg_1m_after']:.2f}",
        f"hive   single-step runs: {r['hive_steps_per_s']:8.1f} steps/s "
        f"(submit calls alone {r['hive_submit_per_s']:.0f}/s)",
        f"celery stamp tasks:      {r['celery_tasks_per_s']:8.1f} tasks/s "
        f"(noop tasks {r['celery_noop_tasks_per_s']:.1f}/s)",
        f"ratio hive/celery:       {r['ratio']:8.2f}",
        f"worker alone (queue filled first): hive {r['hive_drain_steps_per_s']:.1f} steps/s, "
        f"celery {r['celery_drain_tasks_per_s']:.1f} tasks/s, ratio {r['drain_ratio']:.2f}",
        f"start latency idle   hive p50/p99 {r['start_latency_p50_ms']:7.2f} / "
        f"{r['start_latency_p99_ms']:7.2f} ms   celery p50/p99 "
        f"{r['celery_start_latency_p50_ms']:7.2f} / {r['celery_start_latency_p99_ms']:7.2f} ms",
        f"  (idle submit call alone p50 {r['idle_submit_call_p50_ms']:.2f} ms; "
        f"idle run latency p50 {r['idle_run_latency_p50_ms']:.2f} ms)",
        f"start latency loaded hive p50/p99 {r['loaded_start_latency_p50_ms']:7.1f} / "
        f"{r['loaded_start_latency_p99_ms']:7.1f} ms   celery p50/p99 "
        f"{r['celery_loaded_start_latency_p50_ms']:7.1f} / "
        f"{r['celery_loaded_start_latency_p99_ms']:7.1f} ms",
        f"run latency loaded   hive p50/p99 {r['run_latency_p50_ms']:7.1f} / "
        f"{r['run_latency_p99_ms']:7.1f} ms",
        f"chain of 10 one at a time: hive p50 {r['chain10_latency_p50_ms']:.1f} ms, "
        f"celery p50 {r['celery_chain10_latency_p50_ms']:.1f} ms, ratio {r['chain10_ratio']:.2f}",
        f"chain of 10 at once:       hive {r['chain10_steps_per_s']:.1f} steps/s, "
        f"celery {r['celery_chain10_tasks_per_s']:.1f} tasks/s",
        f"fan-out 1000: {r['fanout1000_s']:.2f} s, {r['fanout_per_step_ms']:.2f} ms/step "
        f"vs single-step run {r['single_step_ms']:.2f} ms/step",
        f"metrics on/off: at once {r['hive_steps_per_s']:.1f} / "
        f"{r['metrics_off_steps_per_s']:.1f} steps/s, worker alone "
        f"{r['hive_drain_steps_per_s']:.1f} / {r['metrics_off_drain_steps_per_s']:.1f} steps/s "
        f"(cost {r['metrics_cost']:.1%})",
        "targets:",
    ]
    for name, t in r["targets"].items():
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"  {verdict:8s} {name}: {t['value']:.3f} (target {t['target']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hive-bench-") as tmp:
        pipelines_dir = Path(tmp) / "pipelines"
        pipelines_dir.mkdir()
        write_pipelines(pipelines_dir)
        env = bench_env(pipelines_dir, args.redis_db)
        install_env(env)
        broker = BrokerClaim(args.redis_db)
        broker.claim()
        say(f"{'emptying' if args.skip_build else 'building'} database hive_bench")
        build_database(args.skip_build)
        load_before = load_average()
        worker = WorkerProcess(env, Path(tmp) / "worker.log")
        try:
            say(f"worker pid {worker.pid}: waiting until ready")
            worker.wait_ready()
            results = run_phases(args, broker, worker)
            errors = [line for line in worker.log_tail(20000).splitlines() if "ERROR" in line]
            say("stopping worker")
            worker.stop()
            results.update(metrics_off_phases(args, broker, env, Path(tmp) / "worker-off.log"))
            # The worker alone is where a step's own cost shows, undiluted by submitting.
            results["metrics_cost"] = (
                1 - results["hive_drain_steps_per_s"] / results["metrics_off_drain_steps_per_s"]
            )
        finally:
            say("stopping worker")
            worker.stop()
            broker.release()
        results["machine"] = machine_info(broker.client)
        results["machine"]["loadavg_1m_before"] = load_before
        results["machine"]["loadavg_1m_after"] = load_average()
        results["targets"] = targets(results)
        results["worker_errors"] = errors[-20:]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
