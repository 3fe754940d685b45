"""The engines and direct cursors: commits that do not wait for their WAL flush, transactions
left open, parameters kept out of error messages, JSON cleaned for jsonb, pool timeouts."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hive.db.direct import DirectCursor
from hive.db.engine import get_engine
from hive.db.models import Json
from hive.db.prepared import PreparedStatement
from hive.db.retrying import in_transaction, on_direct_cursor
from hive.errors import ServiceUnavailable
from hive.jsondata import REPLACEMENT

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


def test_a_failing_statement_s_error_holds_none_of_its_parameters(hive_env) -> None:
    secret = "step-input-4111111111111111"
    with pytest.raises(DBAPIError) as raised, get_engine().connect() as conn:
        conn.execute(text("SELECT CAST(:value AS text), 1 / 0"), {"value": secret})
    assert "division by zero" in str(raised.value)
    assert secret not in str(raised.value)
    assert secret not in repr(raised.value)


_ECHO_JSON = PreparedStatement(
    "test_echo_json", text("SELECT CAST(:doc AS jsonb) AS doc"), {"doc": "jsonb"}
)


def test_json_with_a_nul_character_is_stored_cleaned_on_either_path(hive_env) -> None:
    doc = {"message": "bad \x00 byte", "trace": ["\x00"]}
    cleaned = {"message": f"bad {REPLACEMENT} byte", "trace": [REPLACEMENT]}
    direct = on_direct_cursor(lambda cursor: cursor.fetch_one(_ECHO_JSON, {"doc": doc}))
    assert direct == {"doc": cleaned}
    statement = text("SELECT CAST(:doc AS jsonb)").bindparams(bindparam("doc", type_=Json))
    assert in_transaction(lambda conn: conn.execute(statement, {"doc": doc}).scalar()) == cleaned
    assert in_transaction(lambda conn: _ECHO_JSON.execute(conn, {"doc": doc}).scalar()) == cleaned


def test_a_pool_that_stays_exhausted_counts_as_the_database_being_unavailable(hive_env) -> None:
    def exhausted(conn: Connection) -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    with pytest.raises(ServiceUnavailable, match="HIVE_DATABASE_URL"):
        in_transaction(exhausted, retry_s=0.2)


_ONE = PreparedStatement(
    "hive_test_cut_short", text("SELECT CAST(:n AS int) + 1 AS n"), {"n": "int"}
)


def test_a_prepare_cut_short_after_the_server_ran_it_does_not_break_the_connection(
    hive_env,
) -> None:
    """A soft time limit striking inside PREPARE, after the server ran it, leaves the
    statement prepared on the server but not noted on the connection: its next use must
    not fail with DuplicatePreparedStatement (a step's success was lost to it once)."""

    def cut_short_then_used_twice(cursor: DirectCursor) -> list[Any]:
        cursor.cursor.execute(_ONE._prepare)  # the server has it; the note is lost
        cursor.prepared.discard(_ONE.name)
        try:
            return [cursor.fetch_one(_ONE, {"n": 1}), cursor.fetch_one(_ONE, {"n": 2})]
        finally:
            cursor.cursor.execute(f"DEALLOCATE {_ONE.name}")
            cursor.prepared.discard(_ONE.name)

    assert on_direct_cursor(cut_short_then_used_twice) == [{"n": 2}, {"n": 3}]


@pytest.fixture
def two_rows(hive_env) -> Iterator[str]:
    table = f"deadlock_probe_{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))
    yield table
    with get_engine().begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))


def test_a_transaction_that_loses_a_deadlock_runs_again_even_without_an_outage_budget(
    two_rows: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Each takes one row, then (once both hold theirs) the other's: PostgreSQL rolls one
    # back. retry_s=0, as a producer's submit or a person's approval takes.
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts: list[int] = []
    # The loser's second attempt waits for the winner's commit: run at once, it could take
    # its first row back before the winner, woken by the rollback, took it, and deadlock
    # with it again (seen: four attempts, two "deadlock detected").
    committed = {1: threading.Event(), 2: threading.Event()}

    def update_in_order(first: int, second: int) -> Callable[[Connection], int]:
        def fn(conn: Connection) -> int:
            attempts.append(first)
            if attempts.count(first) > 1:
                assert committed[second].wait(30), "the winner never committed"
            conn.execute(text(f"UPDATE {two_rows} SET n = n + 1 WHERE id = :i"), {"i": first})
            if attempts.count(first) == 1:
                both_hold_one.wait()
            conn.execute(text(f"UPDATE {two_rows} SET n = n + 1 WHERE id = :i"), {"i": second})
            return first

        return fn

    def run(first: int, second: int) -> int:
        result = in_transaction(update_in_order(first, second), retry_s=0)
        committed[first].set()
        return result

    caplog.set_level(logging.INFO, logger="hive.db.retrying")
    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(run, 1, 2), pool.submit(run, 2, 1)]
        assert sorted(future.result(timeout=60) for future in done) == [1, 2]

    assert len(attempts) == 3  # the loser ran once more
    with get_engine().connect() as conn:
        counts = conn.execute(text(f"SELECT n FROM {two_rows} ORDER BY id")).scalars().all()
    assert counts == [2, 2]  # both committed, the loser's first attempt not at all
    assert "transaction rolled back (deadlock detected); running it again" in caplog.text
