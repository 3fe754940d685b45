"""The broker's Redis, and a lock so two beats never run the same maintenance at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis
import redis.lock

from hive import keys
from hive.settings import get_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


def broker_redis() -> redis.Redis:
    return redis.Redis.from_url(
        get_settings().broker.url.get_secret_value(), socket_timeout=10, socket_connect_timeout=5
    )


# A held lock's lease: renewed every third of it while its holder runs, so a holder that
# dies (a SIGKILLed worker mid-sweep) blocks the next sweep this long at most, not its ttl.
LEASE_S = 10.0


@contextmanager
def held(client: redis.Redis, name: str, ttl_s: float) -> Iterator[bool]:
    """Yield True while holding the lock ``name`` (redis-py's Lock: SET NX PX + token-checked
    release), False when another process holds it.

    The lock is leased for :data:`LEASE_S` (or ``ttl_s`` if shorter) and the lease renewed
    while the block runs, up to ``ttl_s`` in all: a process that dies frees it within a
    lease; one that runs past ``ttl_s`` loses it, as a stuck sweep should."""
    lease_s = min(LEASE_S, ttl_s)
    # Not thread-local: the renewing thread uses the token the acquiring one got.
    lock = client.lock(
        keys.maintenance_lock(get_settings().broker.key_prefix, name),
        timeout=lease_s,
        thread_local=False,
    )
    acquired = lock.acquire(blocking=False)
    done = threading.Event()
    renewer = None
    if acquired and ttl_s > lease_s:
        renewer = threading.Thread(
            target=_renew, args=(lock, name, lease_s, ttl_s, done), name=f"hive-lock-{name}",
            daemon=True,
        )  # fmt: skip
        renewer.start()
    try:
        yield bool(acquired)
    finally:
        done.set()
        if renewer is not None:
            renewer.join()
        if acquired:
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("maintenance lock %s expired before release", name)


def _renew(
    lock: redis.lock.Lock, name: str, lease_s: float, ttl_s: float, done: threading.Event
) -> None:
    """Put the lease back to ``lease_s`` every third of it, until ``done`` or ``ttl_s``."""
    ends = time.monotonic() + ttl_s
    while not done.wait(lease_s / 3):
        left = ends - time.monotonic()
        try:
            if left <= lease_s:
                # The last stretch: the lease ends with ttl_s, and is not renewed again.
                lock.extend(max(left, 0.001), replace_ttl=True)
                return
            lock.reacquire()
        except redis.exceptions.LockError:
            logger.warning("maintenance lock %s was lost while held", name)
            return
        except redis.RedisError as exc:
            logger.warning("maintenance lock %s not renewed: %s", name, exc)


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
