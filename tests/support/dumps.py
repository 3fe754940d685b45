"""Everything the farm wrote, as text, for tests that grep it for a secret: every row of
every table, every Redis key and value, every command sent to Redis while a test ran
(:class:`RedisMonitor`: the task messages, consumed since), each with its base64 parts
decoded (kombu carries message bodies in base64)."""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterator
from typing import Any

import redis
from sqlalchemy import text

from hive.db.engine import get_engine

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def decoded(value: str) -> Iterator[str]:
    """``value`` itself, then each base64-looking run in it decoded."""
    yield value
    for match in _BASE64.finditer(value):
        chunk = match.group(0)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                yield decode(chunk + "=" * (-len(chunk) % 4)).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                continue


def database_texts() -> list[str]:
    """Every row of every table of the test database, as JSON text."""
    with get_engine().connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        found = []
        for table in list(tables):
            quoted = '"' + table.replace('"', '""') + '"'
            found += conn.execute(text(f"SELECT row_to_json(t)::text FROM {quoted} t")).scalars()
    return found


def redis_texts(client: redis.Redis) -> list[str]:
    """Every key of the client's db and its value, whatever its type."""
    found: list[str] = []
    for key in client.scan_iter(count=1000):
        found.append(_text(key))
        kind = _text(client.type(key))
        value: Any
        if kind == "string":
            value = [client.get(key)]
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = [item for pair in client.hgetall(key).items() for item in pair]
        elif kind == "set":
            value = list(client.smembers(key))
        elif kind == "zset":
            value = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            value = [str(entry) for entry in client.xrange(key)]
        else:
            value = []
        found += [_text(v) for v in value]
    return found


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class RedisMonitor:
    """Records every command the Redis server receives (MONITOR) until :meth:`stop`; only
    those on db index ``db`` when given (other test sessions may share the server)."""

    def __init__(self, client: redis.Redis, db: int | None = None) -> None:
        self.client = client
        self.db = db
        self.commands: list[str] = []
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MONITOR did not start")

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                if self.db is None or command.get("db") == self.db:
                    self.commands.append(str(command.get("command", "")))
                if self._stopping.is_set():
                    return

    def stop(self) -> list[str]:
        self._stopping.set()
        self.client.ping()  # a command to wake the listener
        self._thread.join(10)
        return list(self.commands)
