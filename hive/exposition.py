"""Serving ``/metrics``: a worker's, summed over its pool processes, the API's, summed
over its ``--workers``, and the exporter's.

A prefork worker runs steps in several processes. prometheus-client's multiprocess mode has
each process write its values to files of its own in ``PROMETHEUS_MULTIPROC_DIR``; the
worker's main process serves their sum. The variable must be set before prometheus-client
is first imported (it chooses how values are kept at import), so ``hive worker`` calls
:func:`prepare_multiprocess_dir` first thing. Each worker gets its own directory,
``<temp>/hive-metrics-<uid>/<pid of the main process>``, emptied at start; directories of
workers that no longer run are removed then too. The files of a pool process that died
stay, so its counts never go back, except its share of live gauges, which
:func:`mark_dead_processes` drops on each scrape.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from hive.errors import HiveError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The worker's listening socket, closed in each pool process after the fork.
_server: Any = None


class MetricsPortUnavailable(HiveError):
    """The address and port ``/metrics`` should be served on cannot be bound."""


def prepare_multiprocess_dir(base: Path | None = None) -> Path:
    """Give this process (a worker's main process) an empty metrics directory of its own,
    remove those of workers that are gone, and point prometheus-client at it.

    Must run before anything imports prometheus-client."""
    if "prometheus_client" in sys.modules:
        # Its values would stay in this process's memory: /metrics would show nothing.
        raise RuntimeError("prometheus_client was imported before its multiprocess directory")
    root = base or Path(tempfile.gettempdir()) / f"hive-metrics-{os.getuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for child in root.iterdir():
        if child.name.isdigit() and not _running(int(child.name)):
            shutil.rmtree(child, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)  # a pid reused after a crash
    mine.mkdir(mode=0o700)
    # Writing the variable, not reading settings: prometheus-client reads it itself, and
    # the pool processes inherit it.
    os.environ[MULTIPROC_ENV] = str(mine)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # never from a pool process
            shutil.rmtree(mine, ignore_errors=True)

    atexit.register(remove)
    return mine


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve_worker_metrics(address: str, port: int, directory: Path) -> None:
    """Serve the sum of every process's files in ``directory`` on ``address:port``.

    Raises:
        MetricsPortUnavailable: the port is taken (another worker on this host?).
    """
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    # Collected in this order: the dead are swept before the files are read.
    registry.register(_DeadProcessSweeper(directory))
    registry.register(_PoolFilesCollector(directory))
    global _server
    _server = serve(registry, address, port, "HIVE_METRICS_PORT (or --metrics-port)")


def serve(registry: Any, address: str, port: int, setting: str) -> Any:
    """Serve ``registry`` on ``address:port`` from a daemon thread; returns the server.

    Raises:
        MetricsPortUnavailable: naming ``setting``.
    """
    from prometheus_client import start_http_server

    try:
        server, _ = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        # A name that does not resolve, or an address not of this host: the address is
        # at fault, not the port.
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            setting = "HIVE_METRICS_ADDRESS"
        raise MetricsPortUnavailable(
            f"{setting}: cannot serve metrics on {address}:{port}: {exc.strerror}"
        ) from None
    return server


def close_inherited_server() -> None:
    """In a pool process just forked: close the copy of the main process's listening socket,
    so a pool process that outlives its worker never holds the port."""
    if _server is not None:
        _server.socket.close()


class _DeadProcessSweeper:
    """Collects nothing; on each scrape, drops the live-gauge files of pool processes that
    died (killed, or replaced after ``worker_max_memory_per_child``)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> list[Any]:
        mark_dead_processes(self._directory)
        return []


class _PoolFilesCollector:
    """prometheus-client's ``MultiProcessCollector``, minus the files it cannot read yet.

    A pool process creates its file before sizing it (prometheus/client_python#1199): a
    scrape in that window, right after a pool process is replaced, would fail whole (a 500)
    on the empty file, and for good if the process were killed inside it. A file of fewer
    than 8 bytes holds nothing yet and is left out; one that vanishes between listing and
    reading (its process marked dead meanwhile) sends the scrape round once more."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Any:
        try:
            return self._merge()
        except FileNotFoundError:
            return self._merge()

    def _merge(self) -> Any:
        from prometheus_client import multiprocess

        files = [str(f) for f in self._directory.glob("*.db") if _has_header(f)]
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


def _has_header(path: Path) -> bool:
    try:
        return path.stat().st_size >= 8
    except FileNotFoundError:
        return False


def mark_dead_processes(directory: Path) -> list[int]:
    """``mark_process_dead`` for every process with files in ``directory`` that no longer
    runs; returns their pids."""
    from prometheus_client import multiprocess

    pids = set()
    for path in directory.glob("*.db"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    dead = sorted(pid for pid in pids if not _running(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return dead


def latest(directory: Path | None = None) -> tuple[bytes, str]:
    """This process's metrics in the text format, and its content type: the sum over the
    multiprocess directory (``directory``, or the one this process was started with, as
    ``hive api`` starts its workers), else this process's own."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    # prometheus-client reads the variable itself; so does this, for the same directory.
    path = directory or os.environ.get(MULTIPROC_ENV)
    registry = REGISTRY
    if path:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
