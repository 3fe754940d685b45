"""``python -m bench.step_cost``: the CPU one single-step run costs, measured in one process.

Wall-clock benchmarks say little on a loaded machine; CPU time and call counts do not
depend on the load. This submits ``--n`` single-step runs (``bench-echo``) through
``hive.Client`` and then runs each step's task body in this process, as a worker's pool
would (``run_step`` with a request pushed, no broker round trip), and reports, per run:

- the CPU time of this process for the submit and for the step (``time.process_time``);
- the CPU time of the PostgreSQL backends serving this process (``/proc/PID/stat``);
- with ``--profile``, the exact number of Python calls each made (cProfile, a pass of its
  own: the profiler's overhead would skew the CPU figures).

The messages the submits send stay in the Redis db (``--redis-db``), which is flushed after
each pass; nothing consumes them. Metrics are on and written to a multiprocess directory
of their own, as in a worker's pool process.

The harness uses only what every Hive commit since the fifth round has (``Client.submit``,
``run_step``), so the same file can measure an older checkout: copy it into that checkout's
``bench/`` (or a copy of it) and run it with that checkout's interpreter.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from psycopg2 import sql

from bench import setup

DEFAULT_DATABASE = "hive_perf_cost"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.step_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="single-step runs per pass")
    parser.add_argument("--passes", type=int, default=3, help="measured passes")
    parser.add_argument("--redis-db", type=int, default=setup.DEFAULT_REDIS_DB)
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="PostgreSQL database")
    parser.add_argument(
        "--agent",
        choices=["echo", "http"],
        default="echo",
        help="the step's agent: echo, or http (one GET to a local server answering at once)",
    )
    parser.add_argument(
        "--pool",
        choices=["prefork", "threads"],
        default="prefork",
        help="as under this worker pool: threads runs the agent on an agent thread",
    )
    parser.add_argument("--profile", action="store_true", help="also count calls (cProfile)")
    parser.add_argument(
        "--profile-out",
        metavar="PATH",
        help="with --profile, also write the steps' cProfile stats to PATH and the submits' to "
        "PATH.submit (pstats format)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return parser.parse_args(argv)


def _database_url(database: str) -> str:
    return (
        setup.PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
        + f"/{database}"
    )


def _fresh_database(database: str) -> None:
    """Drop, create and migrate ``database``."""
    conn = psycopg2.connect(setup.PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    name = sql.Identifier(database)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        cur.execute(sql.SQL("CREATE DATABASE {}").format(name))
    conn.close()
    from hive.db.migrate import upgrade

    upgrade(_database_url(database))


class Backends:
    """CPU time of the PostgreSQL backends connected to the bench database (this process's
    pools), read from ``/proc``: the server runs on this machine."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._conn = psycopg2.connect(setup.PG_ADMIN_URL, connect_timeout=5)
        self._conn.autocommit = True

    def cpu_s(self) -> float:
        with self._conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._database,))
            pids = [row[0] for row in cur.fetchall()]
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / _CLK_TCK

    def close(self) -> None:
        self._conn.close()


def _measure(
    work: Callable[[], None], backends: Backends, profile: cProfile.Profile | None
) -> tuple[float, float]:
    """(CPU of this process, CPU of the backends), seconds, for one call of ``work``.
    Backend CPU is counted in clock ticks (10 ms): over hundreds of steps that is fine."""
    pg_before, cpu_before = backends.cpu_s(), time.process_time()
    if profile is not None:
        profile.enable()
    work()
    if profile is not None:
        profile.disable()
    return time.process_time() - cpu_before, backends.cpu_s() - pg_before


def _calls(profile: cProfile.Profile) -> int:
    stats = pstats.Stats(profile)
    return sum(int(entry[1]) for entry in stats.stats.values())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Shape:
    """The single-step pipeline each run is of, its step, and the run input."""

    pipeline: str
    step: str
    input: Callable[[int], dict[str, str]]


ECHO = Shape("bench-echo", "s1", lambda i: {"text": f"cost {i}"})


def _one_pass(
    n: int, backends: Backends, profiled: bool, shape: Shape, profile_out: str | None = None
) -> dict[str, float]:
    from hive import Client
    from hive.tasks.step import run_step

    client = Client()
    runs: list[str] = []

    def submit_all() -> None:
        for i in range(n):
            runs.append(str(client.submit(shape.pipeline, shape.input(i)).id))

    def step_all() -> None:
        for run_id in runs:
            run_step.push_request(id=str(uuid.uuid4()), hostname="step-cost@bench", chain=None)
            try:
                run_step.run(run_id, shape.step, 1)
            finally:
                run_step.pop_request()

    submit_profile = cProfile.Profile() if profiled else None
    step_profile = cProfile.Profile() if profiled else None
    submit_cpu, submit_pg = _measure(submit_all, backends, submit_profile)
    step_cpu, step_pg = _measure(step_all, backends, step_profile)
    unfinished = _unfinished(runs)
    if unfinished:
        raise SystemExit(f"{unfinished} of {n} runs did not succeed: the harness is wrong")
    figures = {
        "submit_cpu_ms": 1000 * submit_cpu / n,
        "submit_pg_cpu_ms": 1000 * submit_pg / n,
        "step_cpu_ms": 1000 * step_cpu / n,
        "step_pg_cpu_ms": 1000 * step_pg / n,
    }
    if submit_profile is not None and step_profile is not None:
        if profile_out:
            step_profile.dump_stats(profile_out)
            submit_profile.dump_stats(f"{profile_out}.submit")
        figures = {
            "submit_calls": _calls(submit_profile) / n,
            "step_calls": _calls(step_profile) / n,
        }
    return {k: round(v, 3) for k, v in figures.items()}


def _unfinished(runs: list[str]) -> int:
    from sqlalchemy import text

    from hive.db.engine import get_engine

    with get_engine().connect() as db:
        done = db.execute(
            text("SELECT count(*) FROM runs WHERE id = ANY(:ids) AND status = 'succeeded'"),
            {"ids": [uuid.UUID(r) for r in runs]},
        ).scalar_one()
    return len(runs) - int(done)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    work = Path(tempfile.mkdtemp(prefix="hive-step-cost-"))
    (work / "pipelines").mkdir()
    (work / "metrics").mkdir()
    # Only the pipeline measured: an older checkout reads every file at each submit.
    echo = setup.pipeline_documents()[ECHO.pipeline]
    (work / "pipelines" / f"{ECHO.pipeline}.yaml").write_text(yaml.safe_dump(echo))
    if args.agent == "http":
        from bench.inflight import call_pipeline

        (work / "pipelines" / "bench-call.yaml").write_text(yaml.safe_dump(call_pipeline()))
    env = setup.bench_env(work / "pipelines", args.redis_db)
    env["HIVE_DATABASE_URL"] = _database_url(args.database)
    # As in a worker's pool process: every metric write goes to a file of this process.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    setup.install_env(env)
    _fresh_database(args.database)
    broker = setup.BrokerClaim(args.redis_db)
    broker.claim()
    backends = Backends(args.database)
    passes: list[dict[str, float]] = []
    server: Any = None
    try:
        shape = ECHO
        if args.agent == "http":
            from bench.inflight import CALL, CALL_STEP
            from bench.slow_server import SlowServerProcess

            server = SlowServerProcess(delay_s=0.0)
            url = server.call_url()
            shape = Shape(CALL, str(CALL_STEP["id"]), lambda i: {"url": url})
        if args.pool == "threads":
            from hive.tasks.deadline import configure_for_pool

            configure_for_pool("threads", 200)
        _one_pass(20, backends, False, shape)  # warm: imports, caches, connections
        broker.reset()
        for _ in range(args.passes):
            load = setup.load_average()
            figures = _one_pass(args.n, backends, False, shape)
            broker.reset()
            passes.append({**figures, "load_before": load})
        if args.profile:
            passes.append(_one_pass(args.n, backends, True, shape, args.profile_out))
            broker.reset()
    finally:
        if server is not None:
            server.stop()
        broker.release()
        backends.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parent,
    ).stdout.strip()  # fmt: skip
    report: dict[str, Any] = {
        "commit": commit,
        "n": args.n,
        "agent": args.agent,
        "pool": args.pool,
        "passes": passes,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"commit {commit}, {args.n} single-step runs a pass ({args.agent} agent, "
        f"as under --pool {args.pool}), per run:"
    )
    for figures in passes:
        print("  " + ", ".join(f"{k} {v}" for k, v in figures.items()))


if __name__ == "__main__":
    sys.exit(main())
