"""Run a transaction again while PostgreSQL is unreachable, with capped backoff.

The whole transaction is the unit that is retried: it rolled back, so running it
again is safe. A commit whose acknowledgement was lost is the one ambiguous case;
callers detect it through their compare-and-set (the row already shows their write).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg2
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hive.db.direct import DirectCursor, direct_cursor
from hive.db.engine import get_engine, unavailable
from hive.settings import get_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _is_disconnect(exc: DBAPIError | psycopg2.Error | PoolTimeout) -> bool:
    if isinstance(exc, PoolTimeout):
        # Every connection stayed checked out: as unavailable as a database that is down.
        return True
    if isinstance(exc, psycopg2.Error):  # from a direct cursor
        return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
    return isinstance(exc, OperationalError) or exc.connection_invalidated


def in_transaction(fn: Callable[[Connection], T], *, retry_s: float | None = None) -> T:
    """``fn(conn)`` inside one transaction, tried again for up to ``retry_s`` seconds
    (default ``HIVE_DB_RETRY_S``) while the database cannot be reached.

    Raises:
        ServiceUnavailable: the database stayed unreachable.
    """

    def attempt() -> T:
        with get_engine().begin() as conn:
            return fn(conn)

    return _retried(attempt, retry_s)


def on_direct_cursor(
    fn: Callable[[DirectCursor], T], *, retry_s: float | None = None, transaction: bool = False
) -> T:
    """``fn(cursor)`` on a DBAPI cursor (:mod:`hive.db.direct`): each statement its own
    transaction, or with ``transaction`` all of them in one. Tried again like
    :func:`in_transaction`.

    Raises:
        ServiceUnavailable: the database stayed unreachable.
    """

    def attempt() -> T:
        with direct_cursor() as cursor:
            if transaction:
                cursor.begin()
            result = fn(cursor)
            cursor.commit()
            return result

    return _retried(attempt, retry_s)


def _retried(attempt: Callable[[], T], retry_s: float | None) -> T:
    budget = get_settings().database.retry_s if retry_s is None else retry_s
    deadline = time.monotonic() + budget
    # The first retry is immediate: a dropped connection makes SQLAlchemy recycle the pool,
    # so it usually succeeds; later ones back off.
    delay = 0.0
    while True:
        try:
            return attempt()
        except (DBAPIError, psycopg2.Error, PoolTimeout) as exc:
            if not _is_disconnect(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise unavailable(exc) from None
            if delay:
                logger.warning("database unreachable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(max(delay * 2, 0.1), 5.0)
