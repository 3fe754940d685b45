"""Revoked API keys, told to every `hive api` process at once over Redis pub/sub.

Each process keeps the key records it read for ``HIVE_API_KEY_CACHE_S``
(:mod:`hive.service.api_keys`), so that a request with a known key costs no round trip.
A revocation therefore publishes the key's id (never the key nor its hash) on
:func:`hive.keys.key_revocations`, and each API process follows that channel on a thread
of its own (:class:`RevocationFollower`) and drops the key's record as the message comes:
the next request reads PostgreSQL and is refused. Requests pay nothing for it. A record
being read as the message comes is not kept (its read may have begun before the revoke
committed): the key cache counts what it is told to forget.

Pub/sub is at most once: a message sent while a process is cut off from Redis is lost to
it. Then the key cache's ttl is the bound: a revoked key works there for at most
``HIVE_API_KEY_CACHE_S`` more. Once the follower is subscribed again it drops every record,
so what it missed is read afresh. The channel's name holds the broker's database index as
well as ``HIVE_KEY_PREFIX``: pub/sub is server-wide, and farms sharing a server on indexes
of their own hear none of each other's revocations.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from hive import keys
from hive.service.failures import first_line
from hive.settings import Settings

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

_KEY_ID = re.compile(r"[0-9a-f]{16}")
# Reconnecting: the first retry after this, doubling up to the cap.
_FIRST_RETRY_S = 0.2
_RETRY_MAX_S = 5.0
# How long the follower waits for a message before it looks whether it should stop.
_POLL_S = 1.0


def _client(settings: Settings, timeout_s: float | None) -> redis.Redis:
    # Imported here: a `hive` command that revokes nothing never loads redis.
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        settings.broker.url.get_secret_value(),
        socket_connect_timeout=3,
        socket_timeout=timeout_s,
        socket_keepalive=True,
        # One try: a revoke does not wait out an outage, and the follower retries itself.
        retry=Retry(NoBackoff(), 0),
    )


def _channel(settings: Settings, client: redis.Redis) -> str:
    # The database index as redis-py read it from the URL (none given: 0).
    db = client.connection_pool.connection_kwargs.get("db") or 0
    return keys.key_revocations(settings.broker.key_prefix, int(db))


def announce_revocation(settings: Settings, key_id: str) -> None:
    """Tell every API process that ``key_id`` is revoked. Redis out of reach is no error
    (the revocation is stored): it is logged, naming the bound it falls back on."""
    import redis

    client = _client(settings, timeout_s=3)
    try:
        client.publish(_channel(settings, client), key_id)
    except redis.RedisError as exc:
        logger.warning(
            "key %s is revoked, but API processes could not be told at once (Redis: %s); "
            "each refuses it within its HIVE_API_KEY_CACHE_S (%gs here)",
            key_id, first_line(exc), settings.api.key_cache_s,
        )  # fmt: skip
    finally:
        client.close()


class RevocationFollower:
    """A thread that drops the record of each key revoked anywhere (``forget(key_id)``),
    and every record (``forget(None)``) each time it is subscribed, having maybe missed
    some. Reconnects with backoff while Redis is away, logging once per outage."""

    def __init__(self, settings: Settings, forget: Callable[[str | None], None]) -> None:
        self._settings = settings
        self._forget = forget
        self._stopping = threading.Event()
        self._down = False
        self._retry_s = _FIRST_RETRY_S
        self._thread = threading.Thread(
            target=self._follow, name="hive-key-revocations", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=_POLL_S + 5)

    def _follow(self) -> None:
        import redis

        client = _client(self._settings, timeout_s=None)
        try:
            while not self._stopping.is_set():
                try:
                    self._listen(client, _channel(self._settings, client))
                except redis.RedisError as exc:
                    self._lost(exc)
                    self._stopping.wait(self._retry_s)
                    self._retry_s = min(self._retry_s * 2, _RETRY_MAX_S)
        except Exception:
            # Never the API's end: the key cache's ttl still bounds a revoked key's life.
            logger.exception("the API key revocation follower stopped")
        finally:
            client.close()

    def _listen(self, client: redis.Redis, channel: str) -> None:
        """Subscribe and drop what each message names, until stopped (returns) or Redis
        fails (raises)."""
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(channel)
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=_POLL_S)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self._subscribed()
                elif message["type"] == "message":
                    data = message["data"]
                    key_id = data.decode() if isinstance(data, bytes) else str(data)
                    if _KEY_ID.fullmatch(key_id):
                        self._forget(key_id)
        finally:
            pubsub.close()

    def _subscribed(self) -> None:
        # Revocations sent while this process was not subscribed are lost to it.
        self._forget(None)
        if self._down:
            logger.info("following API key revocations on Redis again")
        self._down = False
        self._retry_s = _FIRST_RETRY_S

    def _lost(self, exc: Exception) -> None:
        if not self._down:
            logger.warning(
                "cannot follow API key revocations on Redis (%s): until it is back, a key "
                "revoked elsewhere works here for up to HIVE_API_KEY_CACHE_S (%gs); retrying",
                first_line(exc), self._settings.api.key_cache_s,
            )  # fmt: skip
        self._down = True
