"""The process's SQLAlchemy engine: created lazily, disposed after a fork."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine

from hive.errors import ServiceUnavailable
from hive.settings import get_settings

_engines: dict[bool, Engine] = {}
_lock = threading.Lock()


def get_engine(*, autocommit: bool = False) -> Engine:
    """The engine for ``HIVE_DATABASE_URL``; built on first use, never at import.

    ``autocommit=True`` gives a second, small pool whose connections stay in autocommit,
    for the direct cursors of the step path (:mod:`hive.db.direct`): a statement there is
    its own transaction unless the cursor sends ``BEGIN`` with it.
    """
    engine = _engines.get(autocommit)
    if engine is None:
        with _lock:
            engine = _engines.get(autocommit)
            if engine is None:
                # No pre-ping: it costs a round trip per transaction, and every transaction
                # already runs again on a dropped connection (hive.db.retrying).
                engine = create_engine(
                    get_settings().database.url.get_secret_value(),
                    pool_size=2 if autocommit else 5,
                    max_overflow=10,
                    connect_args={"connect_timeout": 5},
                    isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
                )
                _engines[autocommit] = engine
    return engine


def dispose_engine() -> None:
    """Drop inherited connections; call in a freshly forked child (``worker_process_init``)."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


def unavailable(exc: Exception) -> ServiceUnavailable:
    """Translate a connection failure (SQLAlchemy's or psycopg2's own) to the error that
    names the setting."""
    orig = getattr(exc, "orig", None) or exc
    detail = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return ServiceUnavailable("HIVE_DATABASE_URL", detail)
