"""Database errors as the HiveError that names the setting at fault: the one translation.

Every way into PostgreSQL (:func:`~hive.db.retrying.in_transaction`, the direct cursors,
migrations, the readiness check) and the service layer's last-resort translation
(:func:`hive.service.failures.translate_failure`) read errors through
:func:`database_error`, so a dropped connection, an exhausted pool, a missing schema or a
malformed URL is told the same way wherever it surfaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hive.errors import DatabaseNotMigrated, HiveError, ServiceUnavailable, SettingsError
from hive.settings import get_settings

_SETTING = "HIVE_DATABASE_URL"

# What the drivers raise: SQLAlchemy's wrappings, psycopg2's own (direct cursors), and the
# pool's timeout.
DRIVER_ERRORS: tuple[type[Exception], ...] = (DBAPIError, psycopg2.Error, PoolTimeout)


def database_error(exc: BaseException) -> HiveError | None:
    """``exc`` as the HiveError it means, or None when it is not one Hive knows (a bug, a
    constraint: to be raised as it is).

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


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached just now (worth retrying)."""
    return isinstance(database_error(exc), ServiceUnavailable)


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
