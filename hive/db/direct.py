"""A psycopg2 cursor straight from the pool, for the statements on every step's path.

SQLAlchemy's ``Connection`` adds about 0.1 ms to each statement (result metadata, type
processing, events, the pool's transaction bookkeeping). A step's claim and its
one-statement success are sent here instead, on the autocommit pool's connections:
each is its own transaction, and their prepared statements are shared with the
SQLAlchemy path through the connection's ``info``. Everything else uses SQLAlchemy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2

from hive.db.engine import get_engine
from hive.db.prepared import PreparedStatement, prepared_on


@dataclass(frozen=True)
class DirectCursor:
    """A DBAPI cursor on an autocommit connection, and what that connection has prepared."""

    cursor: Any
    prepared: set[str]

    def fetch_one(
        self, statement: PreparedStatement, params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Run ``statement`` (its own transaction) and return its first row by column name."""
        statement.run(self.cursor, self.prepared, params)
        row = self.cursor.fetchone()
        if row is None:
            return None
        return dict(zip((c.name for c in self.cursor.description), row, strict=True))


@contextlib.contextmanager
def direct_cursor() -> Iterator[DirectCursor]:
    """Check a connection out of the autocommit pool. When one breaks, the pool's other
    connections are dropped too, as SQLAlchemy does on a disconnect: they went with it."""
    engine = get_engine(autocommit=True)
    fairy = engine.raw_connection()
    try:
        cursor = fairy.cursor()
        try:
            yield DirectCursor(cursor, prepared_on(fairy.info))
        finally:
            with contextlib.suppress(psycopg2.Error):
                cursor.close()
    except psycopg2.Error:
        if fairy.dbapi_connection is None or fairy.dbapi_connection.closed:
            fairy.invalidate()
            engine.dispose(close=False)
        raise
    finally:
        fairy.close()
