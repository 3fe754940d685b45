"""The broker's Redis, and a lock so two beats never run the same maintenance at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis

from hive import keys
from hive.settings import get_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


def broker_redis() -> redis.Redis:
    return redis.Redis.from_url(
        get_settings().broker.url.get_secret_value(), socket_timeout=10, socket_connect_timeout=5
    )


@contextmanager
def held(client: redis.Redis, name: str, ttl_s: float) -> Iterator[bool]:
    """Yield True while holding the lock ``name`` (redis-py's Lock: SET NX PX + token-checked
    release), False when another process holds it. The TTL frees it if this process dies."""
    lock = client.lock(keys.maintenance_lock(get_settings().broker.key_prefix, name), timeout=ttl_s)
    acquired = lock.acquire(blocking=False)
    try:
        yield bool(acquired)
    finally:
        if acquired:
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("maintenance lock %s expired before release", name)


def run_exclusively(name: str, ttl_s: float, fn: Callable[[redis.Redis], T]) -> T | None:
    """``fn(client)`` under the lock, or None (logged) when another run holds it."""
    client = broker_redis()
    try:
        with held(client, name, ttl_s) as mine:
            if not mine:
                logger.info("%s is already running elsewhere; skipped", name)
                return None
            return fn(client)
    finally:
        client.close()
