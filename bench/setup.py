"""The benchmark's own world: database, Redis db index, pipelines, environment and worker.

Nothing here imports Hive at module level: :func:`install_env` must run first, because
Hive reads its settings once per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg2
import redis
import yaml
from psycopg2 import sql

from bench import keys

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DATABASE = "hive_bench"
REDIS_BASE_URL = "redis://127.0.0.1:6379"
DEFAULT_REDIS_DB = 13
ROOT = Path(__file__).resolve().parent.parent

FANOUT_WIDTH = 1000
CHAIN_LENGTH = 10
_TEXT_SCHEMA = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}


# --------------------------------------------------------------------------- environment


def database_url(database: str = BENCH_DATABASE) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"{base}/{database}"


def bench_env(pipelines_dir: Path, redis_db: int, database: str = BENCH_DATABASE) -> dict[str, str]:
    """The HIVE_* variables the benchmark and its worker share."""
    return {
        "HIVE_DATABASE_URL": database_url(database),
        "HIVE_BROKER_URL": f"{REDIS_BASE_URL}/{redis_db}",
        "HIVE_RESULT_BACKEND": "",
        "HIVE_PIPELINES_DIR": str(pipelines_dir),
        "HIVE_LOG_LEVEL": "WARNING",
        # Metrics on, as in production, on a port nothing else holds.
        "HIVE_METRICS_PORT": str(free_port()),
        "HIVE_METRICS_ADDRESS": "127.0.0.1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_env(env: dict[str, str]) -> None:
    """Put ``env`` in this process's environment; call before importing any Hive module."""
    if "hive.settings" in sys.modules:
        from hive.settings import get_settings

        get_settings.cache_clear()
    os.environ.update(env)


# --------------------------------------------------------------------------- pipelines


def pipeline_documents() -> dict[str, dict[str, Any]]:
    """bench-echo (1 step), bench-chain10 (a line of 10), bench-fanout1000 (root + 1000)."""
    echo = {"id": "s1", "agent": "echo", "input": {"text": "$input.text"}}
    chain = [echo] + [
        {
            "id": f"s{i}",
            "agent": "echo",
            "needs": [f"s{i - 1}"],
            "input": {"text": f"$steps.s{i - 1}.text"},
        }
        for i in range(2, CHAIN_LENGTH + 1)
    ]
    fanout = [{"id": "root", "agent": "echo", "input": {"text": "$input.text"}}] + [
        {
            "id": f"f{i:04d}",
            "agent": "echo",
            "needs": ["root"],
            "input": {"text": "$steps.root.text"},
        }
        for i in range(1, FANOUT_WIDTH + 1)
    ]
    shapes = {"bench-echo": [echo], "bench-chain10": chain, "bench-fanout1000": fanout}
    return {
        name: {"name": name, "version": 1, "input_schema": _TEXT_SCHEMA, "steps": steps}
        for name, steps in shapes.items()
    }


def write_pipelines(directory: Path) -> None:
    for name, document in pipeline_documents().items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


# --------------------------------------------------------------------------- PostgreSQL


def build_database(skip_build: bool, database: str = BENCH_DATABASE) -> None:
    """Drop and create ``database`` (``hive_bench``) and migrate it; with ``skip_build`` keep
    the database (creating it only if missing) and empty its tables instead."""
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    name = sql.Identifier(database)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        exists = cur.fetchone() is not None
        if exists and not skip_build:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        if not exists or not skip_build:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(name))
    conn.close()
    from hive.db.migrate import upgrade

    upgrade(database_url(database))
    if skip_build:
        from sqlalchemy import text

        from hive.db.engine import get_engine

        with get_engine().begin() as db:
            db.execute(text("TRUNCATE runs, step_runs, step_attempts, events CASCADE"))


# --------------------------------------------------------------------------- Redis


class BrokerClaim:
    """The benchmark's Redis db index: refused if someone else's keys are in it."""

    def __init__(self, redis_db: int) -> None:
        # Longer than any BRPOP the phases block in (redis-py's default is 5 s).
        self.client = redis.Redis.from_url(f"{REDIS_BASE_URL}/{redis_db}", socket_timeout=300)
        self.redis_db = redis_db

    def claim(self) -> None:
        """Flush the db for this run, after checking its keys came from an earlier bench run."""
        marker = self.client.get(keys.marker_key())
        if marker is None and self.client.dbsize() > 0:
            raise SystemExit(
                f"Redis db {self.redis_db} holds keys and no {keys.marker_key()!r} marker: "
                "not the benchmark's; pick another with --redis-db"
            )
        if marker is not None:
            owner = json.loads(marker).get("pid")
            if owner and owner != os.getpid() and _alive(owner):
                raise SystemExit(
                    f"another benchmark (pid {owner}) is using Redis db {self.redis_db}"
                )
        self.client.flushdb()
        self._mark()

    def reset(self) -> None:
        """Empty the db between phases, keeping kombu's bindings: a live worker and producer
        route through them and do not declare them again."""
        doomed = [k for k in self.client.scan_iter(count=1000) if not keys.is_kombu_binding(k)]
        if doomed:
            self.client.delete(*doomed)
        self._mark()

    def release(self) -> None:
        """Leave only the marker, so the next run knows the db is the benchmark's."""
        self.client.flushdb()
        self.client.set(keys.marker_key(), json.dumps({"pid": None}))

    def _mark(self) -> None:
        self.client.set(keys.marker_key(), json.dumps({"pid": os.getpid()}))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- worker


class WorkerProcess:
    """``python -m bench.worker`` in its own process group, logging to a file."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        concurrency: int = 2,
        module: str = "bench.worker",
        pool: str = "prefork",
        name: str = "bench",
    ) -> None:
        # ``name`` tells apart several workers of one bench (one node name each).
        self.hostname = f"{name}-{os.getpid()}@{socket.gethostname()}"
        self.log_path = log_path
        args = [
            sys.executable, "-m", module,
            "--concurrency", str(concurrency),
            "--pool", pool,
            "--loglevel", "WARNING",
            "--hostname", self.hostname,
        ]  # fmt: skip
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the worker answers a ping (``celery inspect ping``) or logs "ready."."""
        from hive.tasks.app import app

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
            if "ready." in self.log_tail():
                return
            if app.control.ping(destination=[self.hostname], timeout=0.5, limit=1):
                return
        raise TimeoutError(f"worker not ready after {timeout_s}s:\n{self.log_tail()}")

    def pause(self) -> None:
        """Stop consuming Hive's default queue (messages wait in Redis)."""
        from hive.keys import DEFAULT_QUEUE
        from hive.tasks.app import app

        app.control.cancel_consumer(DEFAULT_QUEUE, destination=[self.hostname], reply=True)

    def resume(self) -> None:
        from hive.keys import DEFAULT_QUEUE
        from hive.tasks.app import app

        app.control.add_consumer(DEFAULT_QUEUE, destination=[self.hostname], reply=True)

    def tree_rss_mb(self) -> float:
        """Resident memory of the worker and its pool processes, in MiB (0 once gone)."""
        total_kib = 0
        for pid in [self.pid, *self.pool_pids()]:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                total_kib += next(
                    int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmRSS:")
                )  # fmt: skip
        return total_kib / 1024

    def tree_cpu_s(self) -> float:
        """CPU time (user and system) of the worker and its live pool processes, seconds."""
        ticks = 0
        for pid in [self.pid, *self.pool_pids()]:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def main_thread_cpu_s(self) -> float:
        """CPU time of the worker's main thread alone: Celery's consumer (it receives every
        message, acknowledges it and publishes its events), whatever the pool."""
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{self.pid}/task/{self.pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def pool_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.pid)], capture_output=True, text=True, check=False
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        self._log.close()


# --------------------------------------------------------------------------- machine


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine_info(broker: redis.Redis) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "?",
    )
    meminfo = Path("/proc/meminfo").read_text().split()
    mem_gib = int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024**2
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]  # type: ignore[index]
    conn.close()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "celery": version("celery"),
        "kombu": version("kombu"),
        "redis_py": version("redis"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg2": version("psycopg2-binary"),
        "postgresql": pg_version,
        "redis_server": broker.info("server")["redis_version"],
    }
