"""The process's SQLAlchemy engine: created lazily, disposed after a fork."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

from hive.errors import ServiceUnavailable
from hive.settings import get_settings

_engine: Engine | None = None
_lock = threading.Lock()


def get_engine() -> Engine:
    """The engine for ``HIVE_DATABASE_URL``; built on first use, never at import."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                # No pre-ping: it costs a round trip per transaction, and every transaction
                # already runs again on a dropped connection (hive.db.retrying).
                _engine = create_engine(
                    get_settings().database_url,
                    pool_size=5,
                    max_overflow=10,
                    connect_args={"connect_timeout": 5},
                )
    return _engine


def dispose_engine() -> None:
    """Drop inherited connections; call in a freshly forked child (``worker_process_init``)."""
    global _engine
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = None


def unavailable(exc: OperationalError) -> ServiceUnavailable:
    """Translate a connection failure to the error that names the setting."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return ServiceUnavailable("HIVE_DATABASE_URL", detail)
