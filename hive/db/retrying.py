"""Run a transaction again while PostgreSQL is unreachable, with capped backoff, and at
once when it lost a deadlock or a serialization conflict (up to three times, whatever the
outage budget: a caller that takes no wait for an outage still expects its statement to
survive another transaction's locks). One that waited for a lock past ``lock_timeout``
runs again the same way, sharing those three, but only while the outage budget lasts:
each time is another wait, which a caller that takes none (a submit) does not want. A
statement the server cancelled otherwise (``statement_timeout``, a cancel) is raised at
once as :class:`~hive.errors.StatementCanceled`: the server is up, and the statement
already spent its allowance (see :mod:`hive.db.errors`).

The whole transaction is the unit that is retried: it rolled back, so running it
again is safe. A commit whose acknowledgement was lost is the one ambiguous case;
callers detect it through their compare-and-set (the row already shows their write).

The functions here are the ways code outside :mod:`hive.db` reaches PostgreSQL (see
:mod:`hive.db` for which statement takes which); all raise database errors translated
by :mod:`hive.db.errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from sqlalchemy import Connection

from hive.db.direct import DirectCursor, direct_cursor
from hive.db.engine import get_engine
from hive.db.errors import DRIVER_ERRORS, conflict, database_error, lock_wait_timed_out
from hive.errors import ServiceUnavailable
from hive.settings import get_settings

__all__ = [
    "Connection",
    "DirectCursor",
    "GiveWay",
    "in_transaction",
    "in_transaction_giving_way",
    "on_direct_cursor",
    "waiting_at_most",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A transaction that loses this many deadlocks (or lock waits) in a row is not having bad
# luck.
_CONFLICT_RETRIES = 3

# A transaction giving way runs again after a pause this long, doubled after each time up
# to the second figure, for this many seconds in all (the third); then it waits for its
# locks. A success or a claim holds a step's row for well under a millisecond.
GIVE_WAY_FIRST_PAUSE_S = 0.002
GIVE_WAY_MAX_PAUSE_S = 0.1
GIVE_WAY_S = 2.0

# A bound on every wait below, set by :func:`waiting_at_most` for the code it wraps.
_wait_cap_s: ContextVar[float | None] = ContextVar("hive_db_wait_cap_s", default=None)


@contextmanager
def waiting_at_most(seconds: float) -> Iterator[None]:
    """Within, no call here waits longer than ``seconds`` for an unreachable database.

    For periodic work whose next tick comes anyway (beat's maintenance): waiting out an
    outage there only holds a worker slot that the steps' own messages need."""
    token = _wait_cap_s.set(seconds)
    try:
        yield
    finally:
        _wait_cap_s.reset(token)


def in_transaction(fn: Callable[[Connection], T], *, retry_s: float | None = None) -> T:
    """``fn(conn)`` inside one transaction, tried again for up to ``retry_s`` seconds
    (default ``HIVE_DB_RETRY_S``) while the database cannot be reached.

    Raises:
        ServiceUnavailable: the database stayed unreachable.
        StatementCanceled: the server gave up on a statement (``lock_timeout``, after
            up to three more tries within ``retry_s``; ``statement_timeout``; a cancel).
        DatabaseNotMigrated, SettingsError: see :func:`hive.db.errors.database_error`.
    """

    def attempt() -> T:
        with get_engine().begin() as conn:
            return fn(conn)

    return _retried(attempt, retry_s)


class GiveWay(Exception):
    """Raised by a transaction run by :func:`in_transaction_giving_way` that found a row it
    would lock out of order held by another transaction: it rolls back and runs again."""


def in_transaction_giving_way(
    fn: Callable[[Connection, bool], T], *, retry_s: float | None = None
) -> T:
    """``fn(conn, give_way)`` as :func:`in_transaction` runs ``fn(conn)``, for a transaction
    that must take some locks in the opposite order to other transactions' (a stop: the
    run's row, then its steps'; a success and a claim: the step's, then the run's).

    With ``give_way`` True, ``fn`` does not wait for the locks it takes out of order: it
    skips rows another transaction holds (``SKIP LOCKED``) and, having skipped one, raises
    :class:`GiveWay`. The whole transaction rolls back (releasing what it locked, so the
    holder goes on instead of deadlocking with it) and runs again after a pause of
    milliseconds that doubles each time. After :data:`GIVE_WAY_S` it runs once more with
    ``give_way`` False, waiting for its locks as it would have from the start (a deadlock
    then is broken by PostgreSQL, and the loser run again, as in :func:`in_transaction`).
    ``fn`` is run whole each time: it must do nothing outside the transaction.
    """
    patience_until = time.monotonic() + GIVE_WAY_S
    pause = GIVE_WAY_FIRST_PAUSE_S
    times = 0
    while time.monotonic() + pause <= patience_until:
        try:
            return in_transaction(lambda conn: fn(conn, True), retry_s=retry_s)
        except GiveWay as held:
            times += 1
            logger.debug("%s: the transaction gave way (%d), again in %.3fs", held, times, pause)
        time.sleep(pause)
        pause = min(pause * 2, GIVE_WAY_MAX_PAUSE_S)
    logger.info("rows held for %.1fs; the transaction waits for them", GIVE_WAY_S)
    return in_transaction(lambda conn: fn(conn, False), retry_s=retry_s)


def in_autocommit(fn: Callable[[Connection], T], *, retry_s: float | None = None) -> T:
    """``fn(conn)`` on a connection of the autocommit pool: each statement its own
    transaction, with no ``BEGIN`` and ``COMMIT`` round trips around it. For one statement,
    or reads that need no common snapshot (under READ COMMITTED each statement of a
    transaction takes its own anyway). Tried again like :func:`in_transaction`."""

    def attempt() -> T:
        with get_engine(autocommit=True).connect() as conn:
            return fn(conn)

    return _retried(attempt, retry_s)


def on_direct_cursor(fn: Callable[[DirectCursor], T], *, retry_s: float | None = None) -> T:
    """``fn(cursor)`` on a DBAPI cursor of the autocommit pool (:mod:`hive.db.direct`):
    each statement its own transaction. Tried again like :func:`in_transaction`.

    Raises:
        ServiceUnavailable: the database stayed unreachable.
        StatementCanceled, DatabaseNotMigrated, SettingsError: see :func:`in_transaction`.
    """

    def attempt() -> T:
        with direct_cursor() as cursor:
            return fn(cursor)

    return _retried(attempt, retry_s)


def _retried(attempt: Callable[[], T], retry_s: float | None) -> T:
    budget = get_settings().database.retry_s if retry_s is None else retry_s
    cap = _wait_cap_s.get()
    if cap is not None:
        budget = min(budget, cap)
    deadline = time.monotonic() + budget
    # The first retry is immediate: a dropped connection makes SQLAlchemy recycle the pool,
    # so it usually succeeds; later ones back off.
    delay = 0.0
    conflicts = 0
    while True:
        try:
            return attempt()
        except DRIVER_ERRORS as exc:
            lost_to = conflict(exc)
            if lost_to is None and time.monotonic() < deadline:
                # Another wait of up to lock_timeout: only within the caller's patience.
                lost_to = lock_wait_timed_out(exc)
            if lost_to is not None and conflicts < _CONFLICT_RETRIES:
                conflicts += 1
                logger.info("transaction rolled back (%s); running it again", lost_to)
                continue
            error = database_error(exc)
            if error is None:
                raise
            if not isinstance(error, ServiceUnavailable) or time.monotonic() + delay > deadline:
                raise error from exc
            if delay:
                logger.warning("database unreachable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(max(delay * 2, 0.1), 5.0)
