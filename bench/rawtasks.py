"""Raw Celery tasks on Hive's own app, so the Hive worker can run them next to ``run_step``.

``bench.stamp`` pushes ``[tag, time.time()]`` (taken when its body starts) onto a Redis
list: the benchmark reads start latency from it and counts completions with LLEN.
``bench.fetch`` makes the same HTTP call as a step of ``bench.concurrency``'s pipeline (the
``http`` agent's GET), with a client made the same way, and pushes ``[tag, start, end,
error]``.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from typing import Any

import httpx
import redis

from bench.keys import FETCH_TASK, NOOP_TASK, STAMP_TASK
from hive.settings import get_settings
from hive.tasks.app import app

_clients: dict[int, redis.Redis] = {}
_ssl: dict[int, ssl.SSLContext] = {}
_local = threading.local()
_lock = threading.Lock()


def _redis() -> redis.Redis:
    # One client per process: pool children are forked from the worker's main process.
    # redis-py's clients are thread-safe (a connection pool each).
    pid = os.getpid()
    with _lock:
        if pid not in _clients:
            _clients[pid] = redis.Redis.from_url(get_settings().broker.url.get_secret_value())
        return _clients[pid]


def _http_client() -> httpx.Client:
    """As the ``http`` agent's: one per thread, sharing the process's SSL context."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        with _lock:
            context = _ssl.get(os.getpid()) or _ssl.setdefault(
                os.getpid(), httpx.create_ssl_context()
            )
        client = _local.client = httpx.Client(verify=context, trust_env=False)
    return client


@app.task(name=NOOP_TASK)
def noop(*args: Any) -> None:
    """Do nothing: the floor of what a Celery task costs on this broker and worker."""


@app.task(name=STAMP_TASK)
def stamp(key: str, tag: int) -> None:
    """Record when this task started: LPUSH ``[tag, time.time()]`` onto ``key``."""
    started = time.time()
    _redis().lpush(key, json.dumps([tag, started]))


@app.task(name=FETCH_TASK)
def fetch(key: str, tag: int, url: str) -> None:
    """GET ``url`` (an error status counts as a failure, as it fails a step), then LPUSH
    ``[tag, start, end, error]`` onto ``key``; ``error`` is None or the exception's class."""
    started = time.time()
    error = None
    try:
        _http_client().get(url, timeout=60.0).raise_for_status()
    except Exception as exc:  # counted by the benchmark; a step would be retried
        error = type(exc).__name__
    _redis().lpush(key, json.dumps([tag, started, time.time(), error]))
