"""A thread-pool worker whose concurrency exceeds the connection pools' old sizes: every step
gets a connection, so none waits out the pool's timeout and loses its message."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from tests.support import db
from tests.support.processes import HiveProcess

# Above the old autocommit pool's 12 connections (2 + 10 overflow).
_THREADS = 14
# Longer than SQLAlchemy's 30 s pool timeout, which the old pools ran into.
_LOCK_AT_MOST_S = 40.0


def _claims_waiting_on_the_lock() -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


@pytest.mark.timeout(180)
def test_a_thread_pool_above_the_old_pool_size_loses_no_message_while_claims_are_held_up(
    start_worker: Callable[..., HiveProcess], success_audit: None
) -> None:
    client = Client()
    runs = [client.submit("fault-fan", {"text": f"r{i}", "seconds": 0.1}) for i in range(_THREADS)]
    with get_engine().connect() as blocker:
        # Every claim holds its connection while it waits for this lock.
        blocker.execute(text("LOCK TABLE step_runs IN EXCLUSIVE MODE"))
        start_worker("--pool", "threads", "--concurrency", str(_THREADS))
        deadline = time.monotonic() + _LOCK_AT_MOST_S
        while time.monotonic() < deadline and _claims_waiting_on_the_lock() < _THREADS:
            time.sleep(0.2)
        waiting = _claims_waiting_on_the_lock()
        blocker.rollback()

    for run in runs:
        run.wait(timeout=60)
    assert waiting == _THREADS, "every thread must have had a connection"
    assert db.scalar("SELECT count(*) FROM runs WHERE status = 'succeeded'") == _THREADS
    assert db.duplicate_successes() == 0
