"""The guard's Redis: the broker's server, under the farm's key prefix, one client a process.

Every limit and breaker lives here, shared by every worker. None of it is the truth about
a run: losing it all lifts the limits for a moment (their windows start again empty) and
closes every breaker, and nothing else.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

from hive.errors import ServiceUnavailable
from hive.settings import get_settings

_lock = threading.Lock()
_client: redis.Redis | None = None


def guard_redis() -> redis.Redis:
    """The process's client (redis-py's pool reconnects after a fork by itself)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    get_settings().broker.url.get_secret_value(),
                    socket_timeout=5,
                    socket_connect_timeout=3,
                    health_check_interval=25,
                )
    return _client


def prefix() -> str:
    return get_settings().broker.key_prefix


def unavailable(exc: redis.RedisError) -> ServiceUnavailable:
    """What a guard that cannot reach Redis raises: a retryable failure naming the setting
    (a limit that cannot be checked is not quietly lifted)."""
    return ServiceUnavailable("HIVE_BROKER_URL", str(exc).splitlines()[0] if str(exc) else "")


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
