"""CPU seconds per process, from ``/proc``: what each side of a bench part spent.

A :class:`CpuWatch` takes a snapshot of the CPU time (user + system) of every process of
interest before and after a part, by role: the bench's client processes, the ``hive api``
server (its process group: uvicorn and its workers), the PostgreSQL backends connected to
the bench's database, and the Redis server. A part's CPU by role is the sum over the
processes seen at its end of (end - start); a process born during the part counts its
whole life, one that ended during it is missed (the bench's processes and pooled backends
live through a part). Redis is the whole server, as ``INFO cpu`` gives it: other users of
the same server add to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg2
import redis

_TICK = os.sysconf("SC_CLK_TCK")
ROLES = ("clients", "api", "postgres", "redis")
Snapshot = dict[str, dict[int, float]]


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (its own threads, not its children)."""
    fields = _stat(pid)
    if fields is None:
        return None
    # After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / _TICK


def group_pids(pgid: int) -> list[int]:
    """Every process whose process group is ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                found.append(int(entry))
    return found


class CpuWatch:
    """Snapshots of CPU seconds by role; ``server_pgid`` is the API's process group."""

    def __init__(self, pg_url: str, database: str, broker: redis.Redis, server_pgid: int) -> None:
        self._pg = psycopg2.connect(pg_url, connect_timeout=5)
        self._pg.autocommit = True
        self._database = database
        self._redis = broker
        self._server_pgid = server_pgid

    def _backends(self) -> list[int]:
        with self._pg.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self._database,),
            )
            return [row[0] for row in cur.fetchall()]

    def snapshot(self, clients: list[int]) -> Snapshot:
        roles: dict[str, list[int]] = {
            "clients": clients,
            "api": group_pids(self._server_pgid),
            "postgres": self._backends(),
        }
        snap: Snapshot = {
            role: {pid: s for pid in pids if (s := cpu_seconds(pid)) is not None}
            for role, pids in roles.items()
        }
        info = self._redis.info("cpu")
        snap["redis"] = {0: float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}
        return snap

    def close(self) -> None:
        self._pg.close()


def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds by role between two snapshots."""
    return {
        role: sum(s - before.get(role, {}).get(pid, 0.0) for pid, s in after.get(role, {}).items())
        for role in ROLES
    }
