"""Fixtures for fault tests: fast maintenance, a private Redis, a cuttable PostgreSQL link."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bench.slow_server import SlowServerProcess
from tests.support.redis_server import RedisServer
from tests.support.tcp_proxy import TcpProxy

# Recovery every second; a lease outlives its step's timeout by two seconds.
FAST = {"HIVE_RECOVERY_INTERVAL_S": "1", "HIVE_LEASE_GRACE_S": "2", "HIVE_PUBLISH_GRACE_S": "3"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a port of its own, so restarting it empty spares the shared one."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_proxy(hive_env: dict[str, str]) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of the session's PostgreSQL; returns it and a database URL through it."""
    url = urlsplit(hive_env["HIVE_DATABASE_URL"])
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    user = f"{url.username}@" if url.username else ""
    proxied = urlunsplit(url._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
    yield proxy, proxied
    proxy.close()


@pytest.fixture
def success_audit(clean_state: None) -> None:
    from tests.support.db import install_success_audit

    install_success_audit()


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[Callable[[float], SlowServerProcess]]:
    """Start ``bench.slow_server`` processes answering after a delay; stopped by PID."""
    started: list[SlowServerProcess] = []

    def start(delay_s: float) -> SlowServerProcess:
        server = SlowServerProcess(delay_s, log_path=tmp_path / f"slow{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
