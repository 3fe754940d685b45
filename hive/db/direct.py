"""A psycopg2 cursor straight from the pool, for the statements on every step's path.

SQLAlchemy's ``Connection`` adds about 0.1 ms to each statement (result metadata, type
processing, events, the pool's transaction bookkeeping). A step's claim, its
one-statement success and a run's submit are sent here instead, on the autocommit
pool's connections: a statement is its own transaction unless :meth:`DirectCursor.begin`
opened one, whose ``BEGIN`` then travels with the first statement. Prepared statements
are shared with the SQLAlchemy path through the connection's ``info``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, cast

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection

from hive.db.engine import get_engine
from hive.db.prepared import PreparedStatement, prepared_on

# Sent in the statement's own query string: the statements of one simple query form one
# transaction, so SET LOCAL holds for it alone (and works behind PgBouncer too).
_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit = off; "


class DirectCursor:
    """A DBAPI cursor on an autocommit connection, and what that connection has prepared."""

    def __init__(self, cursor: Any, prepared: set[str]) -> None:
        self.cursor = cursor
        self.prepared = prepared
        self._begin_with_next = False
        self.in_transaction = False

    def begin(self) -> None:
        """Open a transaction; ``BEGIN`` is sent with the next statement."""
        self._begin_with_next = True

    def commit(self) -> None:
        if self.in_transaction:
            self.cursor.execute("COMMIT")
            self.in_transaction = False
        self._begin_with_next = False

    def fetch_one(
        self,
        statement: PreparedStatement,
        params: Mapping[str, Any],
        *,
        wait_for_flush: bool = True,
    ) -> dict[str, Any] | None:
        """Run ``statement``; its first row by column name. With ``wait_for_flush=False``
        its commit does not wait for the WAL flush: it can be lost in a PostgreSQL crash."""
        self._run(statement, params, "" if wait_for_flush else _NO_FLUSH_WAIT)
        row = self.cursor.fetchone()
        return None if row is None else dict(zip(self._names(), row, strict=True))

    def execute(
        self,
        statement: PreparedStatement,
        params: Mapping[str, Any],
        *,
        wait_for_flush: bool = True,
    ) -> int:
        """Run ``statement``; the number of rows it changed."""
        self._run(statement, params, "" if wait_for_flush else _NO_FLUSH_WAIT)
        return int(self.cursor.rowcount)

    def fetch_all(
        self, statement: PreparedStatement, params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Run ``statement``; every row by column name."""
        self._run(statement, params)
        names = self._names()
        return [dict(zip(names, row, strict=True)) for row in self.cursor.fetchall()]

    def _run(
        self, statement: PreparedStatement, params: Mapping[str, Any], prefix: str = ""
    ) -> None:
        begin = self._begin_with_next
        statement.run(
            self.cursor, self.prepared, params, prefix=("BEGIN; " if begin else "") + prefix
        )
        if begin:
            self._begin_with_next, self.in_transaction = False, True

    def _names(self) -> list[str]:
        return [column.name for column in self.cursor.description]


def fetch_all(
    db: Connection | DirectCursor, statement: PreparedStatement, params: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """Rows of ``statement`` by column name, on either kind of connection."""
    if isinstance(db, DirectCursor):
        return list(db.fetch_all(statement, params))
    return cast(list[Mapping[str, Any]], statement.execute(db, params).mappings().all())


def fetch_one(
    db: Connection | DirectCursor, statement: PreparedStatement, params: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The first row of ``statement`` by column name, on either kind of connection."""
    if isinstance(db, DirectCursor):
        return db.fetch_one(statement, params)
    return cast(Mapping[str, Any] | None, statement.execute(db, params).mappings().first())


@contextlib.contextmanager
def direct_cursor() -> Iterator[DirectCursor]:
    """Check a connection out of the autocommit pool. A transaction left open by an error
    is rolled back before the connection goes back. When a connection breaks, the pool's
    other connections are dropped too, as SQLAlchemy does on a disconnect."""
    engine = get_engine(autocommit=True)
    fairy = engine.raw_connection()
    try:
        cursor = fairy.cursor()
        try:
            yield DirectCursor(cursor, prepared_on(fairy.info))
        finally:
            with contextlib.suppress(psycopg2.Error):
                cursor.close()
    except BaseException:
        dbapi = fairy.dbapi_connection
        if dbapi is None or dbapi.closed:
            fairy.invalidate()
            engine.dispose(close=False)
        elif dbapi.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            try:
                dbapi.cursor().execute("ROLLBACK")
            except psycopg2.Error:
                fairy.invalidate()
        raise
    finally:
        fairy.close()
