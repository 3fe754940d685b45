"""What counting each run's close costs (the trigger of migration 0014, ``hive_runs_total``).

    python -m bench.run_closes [--runs-per-block 2000] [--rounds 3] [--connections 4]

In a database of its own (``hive_bench_closes``, dropped and made again, migrated), closes
runs of one pipeline the way ``finish_run`` does (one UPDATE setting ``finished_at``, its
own transaction, waiting for its flush), from ``--connections`` connections at once, in
blocks alternating with the counting trigger enabled and disabled, so both see the same
background load. Reports the closes per second and the time per close of each block.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid

import psycopg2
from psycopg2 import sql

from bench.setup import PG_ADMIN_URL, load_average

DATABASE = "hive_bench_closes"
_TRIGGER = "runs_count_close"
_INSERT = """
    INSERT INTO runs (id, pipeline, pipeline_version, priority, input, output_spec, status,
                      steps_remaining)
    SELECT gen_random_uuid(), 'bench', 1, 'normal', '{}', '{}', 'running', 1
      FROM generate_series(1, %s)
    RETURNING id
"""
_CLOSE = """
    UPDATE runs SET status = 'succeeded', output = '{}', finished_at = now()
     WHERE id = %s AND status IN ('queued', 'running')
"""


def _fresh_database() -> str:
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"


def _close_all(url: str, ids: list[uuid.UUID], wait_for_flush: bool) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        if not wait_for_flush:
            cur.execute("SET synchronous_commit = off")
        for run_id in ids:
            cur.execute(_CLOSE, (str(run_id),))
    conn.close()


def _block(
    url: str, admin: psycopg2.extensions.connection, n: int, k: int, on: bool, flush: bool
) -> float:
    """Close ``n`` new runs from ``k`` connections at once; seconds of wall time."""
    with admin.cursor() as cur:
        switch = "ENABLE" if on else "DISABLE"
        cur.execute(f"ALTER TABLE runs {switch} TRIGGER {_TRIGGER}")
        cur.execute(_INSERT, (n,))
        ids = [uuid.UUID(str(r[0])) for r in cur.fetchall()]
    shares = [ids[i::k] for i in range(k)]
    threads = [threading.Thread(target=_close_all, args=(url, share, flush)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _trigger_times(url: str, admin: psycopg2.extensions.connection, n: int) -> dict[str, float]:
    """PostgreSQL's own timing of ``n`` closes (EXPLAIN ANALYZE, rolled back): the
    trigger's execution against the whole statement's, medians in microseconds. Measured by
    the server, so a busy machine's scheduling matters less than in the blocks' wall time."""
    with admin.cursor() as cur:
        cur.execute(f"ALTER TABLE runs ENABLE TRIGGER {_TRIGGER}")
        cur.execute(_INSERT, (n,))
        ids = [str(r[0]) for r in cur.fetchall()]
    conn = psycopg2.connect(url)
    trigger_ms, statement_ms = [], []
    with conn.cursor() as cur:
        for run_id in ids:
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + _CLOSE, (run_id,))
            (plan,) = cur.fetchone()[0]
            (trigger,) = [t for t in plan["Triggers"] if t["Trigger Name"] == _TRIGGER]
            trigger_ms.append(trigger["Time"])
            statement_ms.append(plan["Execution Time"])
            conn.rollback()
    conn.close()
    return {
        "trigger_us": round(statistics.median(trigger_ms) * 1000, 1),
        "statement_with_trigger_us": round(statistics.median(statement_ms) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run_closes", description=__doc__)
    parser.add_argument("--runs-per-block", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--no-flush-wait",
        action="store_true",
        help="commit without waiting for the WAL flush: the trigger's own work, without the "
        "flush's wait that hides it on a loaded machine",
    )
    args = parser.parse_args()

    url = _fresh_database()
    from hive.db.migrate import upgrade

    upgrade(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    admin = psycopg2.connect(url)
    admin.autocommit = True
    load_before = load_average()
    n, k = args.runs_per_block, args.connections
    flush = not args.no_flush_wait
    _block(url, admin, n // 4, k, True, flush)  # warm-up
    seconds: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(args.rounds):
        for label in ("on", "off"):
            seconds[label].append(_block(url, admin, n, k, label == "on", flush))
    with admin.cursor() as cur:
        cur.execute("SELECT sum(n) FROM run_closes")
        counted = int(cur.fetchone()[0])
    explained = _trigger_times(url, admin, 1000)
    admin.close()

    def per_close_us(values: list[float]) -> list[float]:
        return [round(v / n * 1e6, 1) for v in values]

    on, off = statistics.median(seconds["on"]), statistics.median(seconds["off"])
    print(json.dumps({
        "runs_per_block": n, "connections": k, "rounds": args.rounds, "wait_for_flush": flush,
        "closes_per_s": {label: [round(n / v) for v in s] for label, s in seconds.items()},
        "us_per_close": {label: per_close_us(s) for label, s in seconds.items()},
        "median_cost_us_per_close": round((on - off) / n * 1e6, 1),
        "median_cost_ratio": round(on / off - 1, 4),
        "counted_with_trigger_on": counted,
        "explain_analyze_median": explained,
        "loadavg_1m_before": load_before, "loadavg_1m_after": load_average(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
