"""A psycopg2 cursor straight from the pool, for the statements on every step's path.

SQLAlchemy's ``Connection`` adds about 0.1 ms to each statement (result metadata, type
processing, events, the pool's transaction bookkeeping). A step's claim, its
one-statement success, its confirmation and a run's submit are sent here instead, on the
autocommit pool's connections: each statement is its own transaction (one round trip, no
``BEGIN``/``COMMIT``). Prepared statements are shared with the SQLAlchemy path through the
connection's ``info``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

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

    def fetch_one(
        self,
        statement: PreparedStatement,
        params: Mapping[str, Any],
        *,
        wait_for_flush: bool = True,
        lock: tuple[int, int] | None = None,
    ) -> dict[str, Any] | None:
        """Run ``statement``; its first row by column name. With ``wait_for_flush=False``
        its commit does not wait for the WAL flush: it can be lost in a PostgreSQL crash.
        With a ``lock``, the transaction-level advisory lock of those two keys is taken
        first, in the same round trip and transaction: the statement's snapshot, taken
        after it, sees all that the lock's previous holder committed."""
        prefix = "" if wait_for_flush else _NO_FLUSH_WAIT
        if lock is not None:
            first, second = (int(key) for key in lock)
            prefix += f"SELECT pg_advisory_xact_lock({first}, {second}); "
        self._run(statement, params, prefix)
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

    def _run(
        self, statement: PreparedStatement, params: Mapping[str, Any], prefix: str = ""
    ) -> None:
        statement.run(self.cursor, self.prepared, params, prefix=prefix)

    def _names(self) -> list[str]:
        return [column.name for column in self.cursor.description]


def direct_cursor() -> DirectCheckout:
    """Check a connection out of the autocommit pool, for a ``with`` block. A transaction
    left open by an error (a multi-statement string cut short) is rolled back before the
    connection goes back. When a connection breaks, the pool's other connections are
    dropped too, as SQLAlchemy does on a disconnect."""
    return DirectCheckout()


class DirectCheckout:
    """:func:`direct_cursor`'s block. A class, not a generator: entered twice a step."""

    __slots__ = ("_cursor", "_engine", "_fairy")

    def __enter__(self) -> DirectCursor:
        engine = self._engine = get_engine(autocommit=True)
        fairy = self._fairy = engine.raw_connection()
        try:
            cursor = self._cursor = fairy.cursor()
            return DirectCursor(cursor, prepared_on(fairy.info))
        except BaseException:
            try:
                self._put_right()
            finally:
                fairy.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            with contextlib.suppress(psycopg2.Error):
                self._cursor.close()
            if exc_type is not None:
                self._put_right()
        finally:
            self._fairy.close()

    def _put_right(self) -> None:
        """After an error: drop a broken connection (and the pool's others), or roll back a
        transaction the error left open."""
        fairy = self._fairy
        dbapi = fairy.dbapi_connection
        if dbapi is None or dbapi.closed:
            fairy.invalidate()
            self._engine.dispose(close=False)
        elif dbapi.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            try:
                dbapi.cursor().execute("ROLLBACK")
            except psycopg2.Error:
                fairy.invalidate()
