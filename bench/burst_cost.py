"""``python -m bench.burst_cost``: what one single-step run costs each process, and what
PostgreSQL does for it, while runs are submitted and executed at once.

``bench.throughput``'s "at once" phase gives a rate, which moves with the machine's load;
this gives, for the same shape of work (``--n`` ``bench-echo`` runs submitted back to back
by this process while a real worker, ``--concurrency 2 --pool prefork``, executes them):

- the CPU each role spent per run, from ``/proc``: the worker's main process, its pool
  processes, the PostgreSQL backends of the bench database, and this submitting process;
- PostgreSQL's own counts per run, from ``pg_stat_user_tables`` and
  ``pg_stat_user_indexes`` of the bench database: scans, tuples read, rows updated
  (HOT or not). These do not depend on the load: they say which statements a change added.

The harness uses only what every Hive commit since the fifth round has (``hive.Client``,
``bench.setup``'s defaults), so the same file can measure an older checkout: copy it (and
``bench/proc_cpu.py``, which reads the CPU times) into that checkout's ``bench/`` and run it
with that checkout's interpreter. Counts from one run
of the database's statistics include the bench's own polling (a ``count(*)`` over ``runs``
every 20 ms once the submits are done): compare two checkouts, not absolute scan counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2

from bench import setup
from bench.proc_cpu import cpu_seconds

_WARMUP = 50
# An idle backend flushes its statistics within 10 s (PGSTAT_IDLE_INTERVAL), a busy one
# at most once a second: the counts are read after this long without statements.
_STATS_FLUSH_S = 11.0
_ECHO = "bench-echo"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.burst_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="runs submitted in the burst")
    parser.add_argument("--redis-db", type=int, default=setup.DEFAULT_REDIS_DB)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return parser.parse_args(argv)


def _cpu_s(pid: int) -> float:
    return cpu_seconds(pid) or 0.0  # a process gone counts nothing


def _backend_pids(exclude: set[int]) -> list[int]:
    conn = psycopg2.connect(setup.PG_ADMIN_URL, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (setup.BENCH_DATABASE,)
            )
            return [row[0] for row in cur.fetchall() if row[0] not in exclude]
    finally:
        conn.close()


def _table_counts(conn: Any) -> dict[str, tuple[int, ...]]:
    """Cumulative statistics of the bench database's tables and indexes (each backend's
    share as last flushed: callers wait :data:`_STATS_FLUSH_S` before reading)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT relname, coalesce(seq_scan, 0), coalesce(seq_tup_read, 0),"
            " coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0), n_tup_ins, n_tup_upd,"
            " n_tup_hot_upd FROM pg_stat_user_tables"
        )
        counts = {f"table {row[0]}": tuple(row[1:]) for row in cur.fetchall()}
        cur.execute("SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes")
        counts.update({f"index {row[0]}": tuple(row[1:]) for row in cur.fetchall()})
    return counts


_TABLE_FIELDS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "ins", "upd", "hot_upd")
_INDEX_FIELDS = ("idx_scan", "idx_tup_read")


def _per_run(
    before: dict[str, tuple[int, ...]], after: dict[str, tuple[int, ...]], n: int
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, values in sorted(after.items()):
        start = before.get(name, (0,) * len(values))
        fields = _TABLE_FIELDS if name.startswith("table ") else _INDEX_FIELDS
        per = {f: round((b - a) / n, 2) for f, a, b in zip(fields, start, values, strict=True)}
        if any(per.values()):
            out[name] = per
    return out


def _wait_done(conn: Any, total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'")
            if cur.fetchone()[0] >= total:
                return
            time.sleep(0.02)
    raise TimeoutError(f"{total} runs not done after {timeout_s:.0f} s")


def measure(n: int, redis_db: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hive-burst-") as tmp:
        pipelines = Path(tmp) / "pipelines"
        pipelines.mkdir()
        setup.write_pipelines(pipelines)
        env = setup.bench_env(pipelines, redis_db)
        setup.install_env(env)
        broker = setup.BrokerClaim(redis_db)
        broker.claim()
        setup.build_database(False)
        worker = setup.WorkerProcess(env, Path(tmp) / "worker.log")
        try:
            worker.wait_ready()
            from hive import Client

            client = Client()
            for _ in range(_WARMUP):
                client.submit(_ECHO, {"text": "x"})
            stats = psycopg2.connect(setup.database_url().replace("+psycopg2", ""))
            stats.autocommit = True
            _wait_done(stats, _WARMUP, 60.0)
            time.sleep(_STATS_FLUSH_S)
            pools = worker.pool_pids()
            backends = _backend_pids({stats.get_backend_pid()})
            tables_before = _table_counts(stats)
            cpu_before = {
                "worker_main": _cpu_s(worker.pid),
                "worker_pool": sum(_cpu_s(p) for p in pools),
                "postgres": sum(_cpu_s(p) for p in backends),
                "submitter": time.process_time(),
            }
            began = time.monotonic()
            for _ in range(n):
                client.submit(_ECHO, {"text": "x"})
            submit_s = time.monotonic() - began
            _wait_done(stats, _WARMUP + n, max(120.0, n * 0.5))
            wall_s = time.monotonic() - began
            cpu_after = {
                "worker_main": _cpu_s(worker.pid),
                "worker_pool": sum(_cpu_s(p) for p in pools),
                "postgres": sum(_cpu_s(p) for p in backends),
                "submitter": time.process_time(),
            }
            time.sleep(_STATS_FLUSH_S)
            tables = _per_run(tables_before, _table_counts(stats), n)
            stats.close()
        finally:
            worker.stop()
            broker.release()
    cpu_ms = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / n, 3) for k in cpu_before}
    return {
        "n": n,
        "runs_per_s": round(n / wall_s, 1),
        "submits_per_s": round(n / submit_s, 1),
        "cpu_ms_per_run": {**cpu_ms, "all": round(sum(cpu_ms.values()), 3)},
        "postgres_per_run": tables,
        "load_1m_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    result = measure(args.n, args.redis_db)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['n']} single-step runs at once: {result['runs_per_s']} runs/s "
        f"(submits {result['submits_per_s']}/s); load after {result['load_1m_after']}"
    )
    print("CPU ms per run: " + ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_run"].items()))
    for name, per in result["postgres_per_run"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in per.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
