"""A statement PostgreSQL gives up on while it is up and answering — a ``lock_timeout``, a
``statement_timeout``, ``NOWAIT``, a cancel — is told as what it is, at once: never waited
out for ``HIVE_DB_RETRY_S`` as an unreachable database, never logged as one."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, text

from hive.db.direct import DirectCursor
from hive.db.engine import dispose_engine, get_engine
from hive.db.retrying import in_transaction, on_direct_cursor
from hive.errors import ServiceUnavailable, StatementCanceled, TransientError


@pytest.fixture
def held_row(hive_env: dict[str, str]) -> Iterator[str]:
    """A table of one row, locked (``FOR UPDATE``) by another connection meanwhile."""
    table = f"lock_probe_{uuid.uuid4().hex[:8]}"
    with get_engine().begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text(f"INSERT INTO {table} VALUES (1, 0)"))
    with get_engine().connect() as holder:
        holder.execute(text(f"SELECT n FROM {table} WHERE id = 1 FOR UPDATE"))
        yield table
        holder.rollback()
    with get_engine().begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))


@pytest.fixture
def database_setting(hive_env: dict[str, str]) -> Iterator[None]:
    """``ALTER DATABASE ... SET`` as a DBA would, reset afterwards (new connections see
    it: the pools are emptied before and after)."""
    changed: list[str] = []

    def set_on_database(name: str, value: str) -> None:
        with get_engine(autocommit=True).connect() as conn:
            database = conn.execute(text("SELECT current_database()")).scalar()
            conn.execute(text(f"ALTER DATABASE \"{database}\" SET {name} = '{value}'"))
        changed.append(name)
        dispose_engine()

    yield set_on_database  # type: ignore[misc]
    with get_engine(autocommit=True).connect() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar()
        for name in changed:
            conn.execute(text(f'ALTER DATABASE "{database}" RESET {name}'))
    dispose_engine()


def _no_outage_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert "unreachable" not in caplog.text


def _update_held_row(held_row: str, attempts: list[int]) -> Callable[[Connection], None]:
    """A transaction that waits at most 50 ms for the held row's lock, counting its tries."""

    def update(conn: Connection) -> None:
        attempts.append(1)
        conn.execute(text("SET LOCAL lock_timeout = '50ms'"))
        conn.execute(text(f"UPDATE {held_row} SET n = n + 1 WHERE id = 1"))

    return update


def test_a_lock_timeout_fails_fast_as_a_lock_timeout_not_as_an_outage(
    held_row: str, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []
    update = _update_held_row(held_row, attempts)

    caplog.set_level(logging.INFO, logger="hive.db")
    with pytest.raises(StatementCanceled) as raised:
        in_transaction(update)
    error = raised.value
    assert not isinstance(error, ServiceUnavailable)
    assert isinstance(error, TransientError)  # a step failing with it is retried
    assert error.setting == "lock_timeout"
    assert "lock_timeout" in str(error)
    assert "canceling statement due to lock timeout" in str(error)
    assert "HIVE_DATABASE_URL" not in str(error)
    # Retried a bounded few times, as a lost deadlock is, then raised.
    assert len(attempts) == 4
    _no_outage_logged(caplog)


def test_a_caller_that_takes_no_wait_hears_of_a_lock_timeout_after_one_try(
    held_row: str, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []
    update = _update_held_row(held_row, attempts)

    caplog.set_level(logging.INFO, logger="hive.db")
    # retry_s=0, as a submit takes: each try more would be another wait for the lock.
    with pytest.raises(StatementCanceled, match="lock_timeout"):
        in_transaction(update, retry_s=0)
    assert attempts == [1]
    _no_outage_logged(caplog)


def test_nowait_on_a_held_row_is_a_lock_not_available_not_an_outage(
    held_row: str, caplog: pytest.LogCaptureFixture
) -> None:
    def take(cursor: DirectCursor) -> None:
        cursor.cursor.execute(f"SELECT n FROM {held_row} WHERE id = 1 FOR UPDATE NOWAIT")

    caplog.set_level(logging.INFO, logger="hive.db")
    with pytest.raises(
        StatementCanceled, match=f'could not obtain lock on row in relation "{held_row}"'
    ):
        on_direct_cursor(take)
    _no_outage_logged(caplog)


def test_a_lock_timeout_set_on_the_database_fails_fast_through_the_direct_cursor(
    held_row: str, database_setting, caplog: pytest.LogCaptureFixture
) -> None:
    database_setting("lock_timeout", "50ms")

    def update(cursor: DirectCursor) -> None:
        cursor.cursor.execute(f"UPDATE {held_row} SET n = n + 1 WHERE id = 1")

    caplog.set_level(logging.INFO, logger="hive.db")
    with pytest.raises(StatementCanceled, match="lock_timeout") as raised:
        on_direct_cursor(update)
    assert raised.value.setting == "lock_timeout"
    _no_outage_logged(caplog)


def test_a_statement_timeout_fails_at_once_as_a_statement_timeout_not_as_an_outage(
    database_setting, caplog: pytest.LogCaptureFixture
) -> None:
    database_setting("statement_timeout", "100ms")
    attempts: list[int] = []

    def sleep(conn: Connection) -> None:
        attempts.append(1)
        conn.execute(text("SELECT pg_sleep(5)"))

    caplog.set_level(logging.INFO, logger="hive.db")
    with pytest.raises(StatementCanceled) as raised:
        in_transaction(sleep)
    error = raised.value
    assert error.setting == "statement_timeout"
    assert "statement_timeout" in str(error)
    assert "canceling statement due to statement timeout" in str(error)
    # It spent the whole allowance: running it again would spend it again.
    assert attempts == [1]
    _no_outage_logged(caplog)


def test_a_maintenance_run_whose_statement_times_out_is_skipped_until_the_next_tick(
    database_setting, caplog: pytest.LogCaptureFixture
) -> None:
    from hive.beat.tasks import _periodic

    database_setting("statement_timeout", "100ms")

    def purge() -> dict[str, Any]:
        in_transaction(lambda conn: conn.execute(text("SELECT pg_sleep(5)")))
        return {"purged": 0}

    caplog.set_level(logging.INFO, logger="hive")
    assert _periodic("purge", purge) is None
    assert "purge skipped: the database is up but gave up on a statement past its " in caplog.text
    assert "statement_timeout" in caplog.text
    _no_outage_logged(caplog)


def test_a_statement_cancelled_by_an_operator_is_not_retried_nor_an_outage(
    hive_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    pids: list[int] = []

    def sleep(conn: Connection) -> None:
        pids.append(int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()))
        started.set()
        conn.execute(text("SELECT pg_sleep(30)"))

    def cancel() -> None:
        assert started.wait(30)
        with get_engine(autocommit=True).connect() as conn:
            # The backend may not be inside pg_sleep yet: cancel until it was.
            while not conn.execute(
                text(
                    "SELECT pg_cancel_backend(:pid) AND state = 'active' FROM pg_stat_activity"
                    " WHERE pid = :pid AND query LIKE '%pg_sleep(30)%'"
                ),
                {"pid": pids[0]},
            ).scalar():
                pass

    caplog.set_level(logging.INFO, logger="hive.db")
    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        with pytest.raises(StatementCanceled, match="due to user request") as raised:
            in_transaction(sleep)
    finally:
        canceller.join(30)
    assert raised.value.setting is None
    assert len(pids) == 1
    _no_outage_logged(caplog)


def test_a_connection_terminated_by_an_administrator_is_still_an_outage_retried(
    hive_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pids: list[int] = []

    def terminated_once(conn: Connection) -> int:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        pids.append(pid)
        if len(pids) == 1:
            with get_engine(autocommit=True).connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            conn.execute(text("SELECT 1"))  # admin_shutdown (57P01): the connection is gone
        return pid

    caplog.set_level(logging.INFO, logger="hive.db")
    assert in_transaction(terminated_once, retry_s=30) == pids[-1]
    assert len(pids) == 2 and pids[0] != pids[1]
