"""The process's SQLAlchemy engines: created lazily, disposed after a fork, their pools
sized to the worker's concurrency."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine

from hive.jsondata import dumps
from hive.settings import get_settings

_engines: dict[bool, Engine] = {}
_lock = threading.Lock()

# Connections each pool keeps (autocommit pool, transaction pool) unless the worker asks
# for more; either pool may open this many again beyond that, for maintenance tasks and
# the worker's main thread.
_BASE_SIZE = {True: 2, False: 5}
_OVERFLOW = 10
_tasks_at_once = 0


def size_pools(tasks_at_once: int) -> None:
    """Let each pool hold a connection for every task this process runs at once (a thread
    pool's concurrency), up to ``HIVE_DB_POOL_MAX``, so that few tasks wait for another's
    connection: a step holds at most one of each pool's at a time, and only while it claims
    or finishes. Engines already built are rebuilt on next use."""
    global _tasks_at_once
    with _lock:
        _tasks_at_once = tasks_at_once
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def get_engine(*, autocommit: bool = False) -> Engine:
    """The engine for ``HIVE_DATABASE_URL``; built on first use, never at import.

    ``autocommit=True`` gives a second pool whose connections stay in autocommit, for the
    direct cursors of the step path (:mod:`hive.db.direct`): a statement there is its own
    transaction unless the cursor sends ``BEGIN`` with it.
    """
    engine = _engines.get(autocommit)
    if engine is None:
        with _lock:
            engine = _engines.get(autocommit)
            if engine is None:
                # No pre-ping: it costs a round trip per transaction, and every transaction
                # already runs again on a dropped connection (hive.db.retrying).
                settings = get_settings().database
                wanted = min(_tasks_at_once, settings.pool_max)
                engine = create_engine(
                    settings.url.get_secret_value(),
                    pool_size=max(_BASE_SIZE[autocommit], wanted),
                    max_overflow=_OVERFLOW,
                    connect_args={"connect_timeout": 5},
                    isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
                    # The pool's rollback at each check-in is a no-op for a connection in
                    # autocommit (psycopg2 sends nothing), but Python work twice a step; a
                    # transaction a direct cursor's error left open is rolled back there.
                    pool_reset_on_return=None if autocommit else "rollback",
                    # A failed statement's message would otherwise carry its parameters
                    # (step inputs and outputs) into logs and error records.
                    hide_parameters=True,
                    json_serializer=dumps,
                )
                _engines[autocommit] = engine
    return engine


def dispose_engine() -> None:
    """Drop inherited connections; call in a freshly forked child (``worker_process_init``)."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
