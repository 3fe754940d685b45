"""Raw Celery tasks on Hive's own app, so the Hive worker can run them next to ``run_step``.

``bench.stamp`` pushes ``[tag, time.time()]`` (taken when its body starts) onto a Redis
list: the benchmark reads start latency from it and counts completions with LLEN.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from bench.keys import NOOP_TASK, STAMP_TASK
from hive.settings import get_settings
from hive.tasks.app import app

_clients: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    # One client per process: pool children are forked from the worker's main process.
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(get_settings().broker.url.get_secret_value())
    return _clients[pid]


@app.task(name=NOOP_TASK)
def noop(*args: Any) -> None:
    """Do nothing: the floor of what a Celery task costs on this broker and worker."""


@app.task(name=STAMP_TASK)
def stamp(key: str, tag: int) -> None:
    """Record when this task started: LPUSH ``[tag, time.time()]`` onto ``key``."""
    started = time.time()
    _redis().lpush(key, json.dumps([tag, started]))
