"""The process's connection pools: which commits wait for their WAL flush."""

from __future__ import annotations

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import text

from hive.db.direct import DirectCursor
from hive.db.engine import get_engine
from hive.db.retrying import on_direct_cursor


def _synchronous_commit(cursor: DirectCursor) -> str:
    cursor.cursor.execute("SHOW synchronous_commit")
    return str(cursor.cursor.fetchone()[0])


def test_only_the_no_flush_pool_commits_without_waiting_for_the_flush(hive_env) -> None:
    assert on_direct_cursor(_synchronous_commit, flush_commits=False) == "off"
    assert on_direct_cursor(_synchronous_commit) == "on"
    for autocommit in (False, True):
        with get_engine(autocommit=autocommit).connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
    # Many checkouts later, a pooled connection keeps its setting.
    assert {on_direct_cursor(_synchronous_commit, flush_commits=False) for _ in range(20)} == {
        "off"
    }


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
