"""Direct cursors: commits that do not wait for their WAL flush, and transactions left open."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import text

from hive.db.direct import DirectCursor
from hive.db.engine import get_engine
from hive.db.prepared import PreparedStatement
from hive.db.retrying import on_direct_cursor

_COMMIT_MODE = PreparedStatement(
    "test_commit_mode", text("SELECT current_setting('synchronous_commit') AS mode"), {}
)


def _synchronous_commit(cursor: DirectCursor) -> str:
    cursor.cursor.execute("SHOW synchronous_commit")
    return str(cursor.cursor.fetchone()[0])


def test_a_statement_sent_without_waiting_for_the_flush_leaves_the_connection_as_it_was(
    hive_env,
) -> None:
    def modes(cursor: DirectCursor) -> tuple[Any, Any, str]:
        assert cursor.cursor.connection.autocommit  # a statement is its own transaction
        unflushed = cursor.fetch_one(_COMMIT_MODE, {}, wait_for_flush=False)
        flushed = cursor.fetch_one(_COMMIT_MODE, {})
        return unflushed, flushed, _synchronous_commit(cursor)

    assert on_direct_cursor(modes) == ({"mode": "off"}, {"mode": "on"}, "on")
    with get_engine().connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_direct_transaction_left_open_by_an_error_is_rolled_back(hive_env) -> None:
    def fail_mid_transaction(cursor: DirectCursor) -> None:
        cursor.cursor.execute("BEGIN; CREATE TEMP TABLE half_written (x int)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        on_direct_cursor(fail_mid_transaction)

    def status(cursor: DirectCursor) -> tuple[int, bool]:
        cursor.cursor.execute("SELECT to_regclass('pg_temp.half_written') IS NULL")
        missing = bool(cursor.cursor.fetchone()[0])
        return cursor.cursor.connection.get_transaction_status(), missing

    # The same pool's connections: idle (no transaction), and the table never existed.
    assert {on_direct_cursor(status) for _ in range(5)} == {(TRANSACTION_STATUS_IDLE, True)}
