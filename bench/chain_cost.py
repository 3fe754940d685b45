"""``python -m bench.chain_cost``: where a ten-step chain's time goes, against raw Celery.

``bench.throughput`` reports a chain of ten's p50 against raw Celery's as one ratio; this
takes only that phase, and splits a Hive hop into the parts PostgreSQL's own timestamps
give (``started_at`` is the claim's transaction start, ``finished_at`` the success's):

- **in step**: claim start to success start (the claim, resolving the input, the agent);
- **gap**: a step's success start to the next step's claim start (the success statement
  and its commit, Celery publishing the chain's next message, Redis, the worker's main
  process handing it to a pool process, the task's start);
- **first start**: submit call to the first step's claim.

It also reports the CPU a hop costs each process (the worker's main process, its pool
processes, the PostgreSQL backends of the bench database, redis-server), from ``/proc``,
over ``--cpu-chains`` Hive chains alone and then as many raw chains alone: CPU time does
not depend on the machine's load the way wall time does.

One worker (``--concurrency 2 --pool prefork``), as in ``bench.throughput``; it uses the
same database (``hive_bench``), so do not run both at once. The harness uses only what
the bench had at ``cd0bbc8``, so the same file can measure that checkout: copy it into its
``bench/`` and run it with its interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg2

from bench import setup
from bench.stats import p50_p99_ms

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_WARM_CHAINS = 5

# Consecutive steps of the bench's chains (s1 .. s10): in step, and gap to the next claim.
_HOPS = """
SELECT percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM s.finished_at - s.started_at)) AS in_step,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM n.started_at - s.finished_at)) AS gap,
       count(*) AS hops
  FROM step_runs s
  JOIN step_runs n ON n.run_id = s.run_id
                  AND n.step_id = 's' || (substr(s.step_id, 2)::int + 1)
 WHERE s.run_id = ANY(%s::uuid[])
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chain_cost", description=__doc__)
    parser.add_argument(
        "--chains", type=int, default=100, help="Hive chains, each followed by a raw chain"
    )
    parser.add_argument(
        "--cpu-chains", type=int, default=60, help="chains of each kind for the CPU figures"
    )
    parser.add_argument("--redis-db", type=int, default=setup.DEFAULT_REDIS_DB)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return parser.parse_args(argv)


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


class Processes:
    """CPU time of the worker's processes, the bench database's backends and Redis."""

    def __init__(self, worker: setup.WorkerProcess, broker: Any) -> None:
        self._worker = worker
        self._redis_pid = int(broker.info("server")["process_id"])
        self._pg = psycopg2.connect(setup.PG_ADMIN_URL, connect_timeout=5)
        self._pg.autocommit = True

    def cpu_s(self) -> dict[str, float]:
        with self._pg.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = 'hive_bench'")
            backends = [row[0] for row in cur.fetchall()]
        return {
            "main": _cpu_s(self._worker.pid),
            "pool": sum(_cpu_s(pid) for pid in self._worker.pool_pids()),
            "postgres": sum(_cpu_s(pid) for pid in backends),
            "redis": _cpu_s(self._redis_pid),
        }

    def close(self) -> None:
        self._pg.close()


def _per_hop_ms(before: dict[str, float], after: dict[str, float], hops: int) -> dict[str, float]:
    return {k: round(1000 * (after[k] - before[k]) / hops, 3) for k in before}


def _hops(run_ids: list[Any]) -> dict[str, float]:
    conn = psycopg2.connect(setup.database_url().replace("+psycopg2", ""), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(_HOPS, ([str(r) for r in run_ids],))
            in_step, gap, hops = cur.fetchone()
    finally:
        conn.close()
    return {"in_step_p50_ms": 1000 * in_step, "gap_p50_ms": 1000 * gap, "hops": hops}


def _measure(args: argparse.Namespace, broker: setup.BrokerClaim, worker: Any) -> dict[str, Any]:
    # Imported only now: Hive reads its settings from the environment once.
    from bench.hive_phases import CHAIN, ECHO, HiveBench, Timings
    from bench.raw_phases import RawBench, RawTimings

    hive, raw = HiveBench(), RawBench(broker.client)
    hive.burst(ECHO, 50)
    raw.burst(50)
    broker.reset()
    hive.analyze()
    for _ in range(_WARM_CHAINS):
        hive.one_at_a_time(CHAIN, 1)
        raw.chains(1)
    report: dict[str, Any] = {}
    if args.cpu_chains:
        processes = Processes(worker, broker.client)
        try:
            before = processes.cpu_s()
            for _ in range(args.cpu_chains):
                hive.one_at_a_time(CHAIN, 1)
            middle = processes.cpu_s()
            for _ in range(args.cpu_chains):
                raw.chains(1)
            after = processes.cpu_s()
        finally:
            processes.close()
        report["hive_cpu_ms_per_hop"] = _per_hop_ms(before, middle, 10 * args.cpu_chains)
        report["celery_cpu_ms_per_task"] = _per_hop_ms(middle, after, 10 * args.cpu_chains)
    load = setup.load_average()
    hive_parts, raw_parts = [], []
    for _ in range(args.chains):
        hive_parts.append(hive.one_at_a_time(CHAIN, 1))
        raw_parts.append(raw.chains(1))
    timed, raw_timed = Timings.merged(hive_parts), RawTimings.merged(raw_parts)
    hive_p50 = p50_p99_ms(timed.finish)[0]
    raw_p50 = p50_p99_ms(raw_timed.start)[0]
    report.update(
        chains=args.chains,
        load_before=load,
        load_after=setup.load_average(),
        chain10_p50_ms=hive_p50,
        celery_chain10_p50_ms=raw_p50,
        chain10_ratio=hive_p50 / raw_p50,
        first_start_p50_ms=p50_p99_ms(timed.start)[0],
        **_hops(_chain_runs()),
    )
    return report


def _chain_runs() -> list[Any]:
    """The bench database's chain runs: every one this harness submitted (the warm-up's,
    the CPU passes' and the alternated ones)."""
    conn = psycopg2.connect(setup.database_url().replace("+psycopg2", ""), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM runs WHERE pipeline = 'bench-chain10'")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="hive-chain-cost-") as tmp:
        pipelines = Path(tmp) / "pipelines"
        pipelines.mkdir()
        setup.write_pipelines(pipelines)
        env = setup.bench_env(pipelines, args.redis_db)
        setup.install_env(env)
        broker = setup.BrokerClaim(args.redis_db)
        broker.claim()
        setup.build_database(False)
        worker = setup.WorkerProcess(env, Path(tmp) / "worker.log")
        try:
            worker.wait_ready()
            report = _measure(args, broker, worker)
        finally:
            worker.stop()
            broker.reset()
            broker.release()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parent,
    ).stdout.strip()  # fmt: skip
    report = {"commit": commit, **report}
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {round(value, 3) if isinstance(value, float) else value}")


if __name__ == "__main__":
    sys.exit(main())
