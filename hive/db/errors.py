"""Database errors as the HiveError that names the setting at fault: the one translation.

Every way into PostgreSQL (:func:`~hive.db.retrying.in_transaction`, the direct cursors,
migrations, the readiness check) and the service layer's last-resort translation
(:func:`hive.service.failures.translate_failure`) read errors through
:func:`database_error`, so a dropped connection, an exhausted pool, a missing schema or a
malformed URL is told the same way wherever it surfaces.

psycopg2 files under ``OperationalError`` both an unreachable server and statements a
server that is up gave up on; the two are told apart here by SQLSTATE (``pgcode``), never
by the class alone:

- ``lock_not_available`` (55P03: ``lock_timeout``, ``NOWAIT``) and ``query_canceled``
  (57014: ``statement_timeout``, ``pg_cancel_backend``) → :class:`StatementCanceled`. The
  database answered: waiting out ``HIVE_DB_RETRY_S`` for it, and logging an outage, would
  hold the caller for minutes and mislead whoever reads the log.
  :mod:`hive.db.retrying` runs a transaction that timed out on a lock again a few times
  within the caller's budget, as it does one that lost a deadlock (see
  :func:`lock_wait_timed_out`); it raises the rest at once.
- ``admin_shutdown``, ``cannot_connect_now`` (57P01, 57P03), a refused or dropped
  connection, an exhausted pool → :class:`ServiceUnavailable`, waited out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2
import psycopg2.errorcodes
import psycopg2.errors
import psycopg2.extensions
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hive.errors import (
    DatabaseNotMigrated,
    HiveError,
    ServiceUnavailable,
    SettingsError,
    StatementCanceled,
)
from hive.settings import get_settings

_SETTING = "HIVE_DATABASE_URL"

# What the drivers raise: SQLAlchemy's wrappings, psycopg2's own (direct cursors), and the
# pool's timeout.
DRIVER_ERRORS: tuple[type[Exception], ...] = (DBAPIError, psycopg2.Error, PoolTimeout)

# The statements a server that is up gave up on, and the setting each message names (the
# server's messages in English: under another lc_messages the setting stays unnamed).
_CANCELED = frozenset({psycopg2.errorcodes.LOCK_NOT_AVAILABLE, psycopg2.errorcodes.QUERY_CANCELED})
_CANCELED_BY = {
    "due to lock timeout": "lock_timeout",
    "due to statement timeout": "statement_timeout",
}


def database_error(exc: BaseException) -> HiveError | None:
    """``exc`` as the HiveError it means, or None when it is not one Hive knows (a bug, a
    constraint: to be raised as it is).

    - a statement the server gave up on (SQLSTATE 55P03, 57014: a ``lock_timeout``,
      ``NOWAIT``, a ``statement_timeout``, a cancel) → :class:`StatementCanceled` naming
      the setting (transient; not an outage);
    - a connection refused or dropped, or a pool whose connections all stayed checked out
      → :class:`ServiceUnavailable` naming ``HIVE_DATABASE_URL`` (transient);
    - a table or column that does not exist → :class:`DatabaseNotMigrated`;
    - libpq refusing the URL ("invalid dsn") → :class:`SettingsError`.
    """
    if isinstance(exc, PoolTimeout):
        # Every connection stayed checked out: as unavailable as a database that is down.
        return ServiceUnavailable(_SETTING, _first_line(exc))
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg2.Error):
        if orig.pgcode in _CANCELED:
            detail = _first_line(orig)
            setting = next((s for said, s in _CANCELED_BY.items() if said in detail), None)
            return StatementCanceled(setting, detail)
        if isinstance(orig, psycopg2.errors.UndefinedTable):
            return DatabaseNotMigrated(get_settings().database.name)
        if isinstance(orig, psycopg2.errors.UndefinedColumn):
            # Tables of an older schema: the code was upgraded, the database was not.
            return DatabaseNotMigrated(
                get_settings().database.name,
                f"lacks part of this Hive's schema ({_first_line(orig)})",
            )
        if isinstance(orig, psycopg2.OperationalError | psycopg2.InterfaceError):
            return ServiceUnavailable(_SETTING, _first_line(orig))
        if str(orig).startswith("invalid dsn"):
            return SettingsError(_SETTING, _first_line(orig))
    if isinstance(exc, DBAPIError) and (
        isinstance(exc, OperationalError) or exc.connection_invalidated
    ):
        return ServiceUnavailable(_SETTING, _first_line(orig or exc))
    return None


def conflict(exc: BaseException) -> str | None:
    """What PostgreSQL said (``deadlock detected``) when it rolled the transaction back to
    break a deadlock or a serialization conflict with another one, else None. The database
    is up: running the transaction again at once is the remedy its documentation gives."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg2.extensions.TransactionRollbackError):
        return _first_line(orig)
    return None


def lock_wait_timed_out(exc: BaseException) -> str | None:
    """What PostgreSQL said when a statement found a lock held past ``lock_timeout`` (or
    under ``NOWAIT``), else None. Its holder may be done by the time the transaction runs
    again, as a deadlock's winner is: worth a few tries, not an outage's wait. A
    ``statement_timeout`` or a cancel is not: the statement spent its whole allowance, or
    someone asked it to stop."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg2.Error) and orig.pgcode == psycopg2.errorcodes.LOCK_NOT_AVAILABLE:
        return _first_line(orig)
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise what a driver raises inside as the HiveError it means (see
    :func:`database_error`); errors Hive does not know pass unchanged."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        error = database_error(exc)
        if error is None:
            raise
        raise error from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
