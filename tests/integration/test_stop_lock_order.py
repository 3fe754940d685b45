"""A stop racing a step's success: no deadlock. The stop locks the run's row, then its
steps'; a success locks its step's row, then (the same statement) the run's. A stop that met
the step's row held used to wait for it holding the run's row, and PostgreSQL broke the
cycle a second later (``deadlock detected``); it now gives way and runs again.

Real PostgreSQL, no worker: connection A does what the success statement does, in its
order, with the real stop (as its callers run it) racing from a thread in between."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from hive import service
from hive.db import claims
from hive.db.engine import get_engine
from hive.db.retrying import on_direct_cursor
from hive.errors import BudgetExceeded
from hive.settings import get_settings
from hive.tasks import outcomes
from hive.tasks.cancel import stop_for_budget
from tests.support import db
from tests.support.processes import wait_until
from tests.support.racing import waiting_for_locks

pytestmark = pytest.mark.timeout(60)


def _claim(run_id: uuid.UUID, step_id: str) -> None:
    claimed = on_direct_cursor(
        lambda cursor: claims.claim(
            cursor, run_id, step_id, 1, worker="test", task_id=None, grace_s=60.0
        )
    )
    assert claimed is not None, f"{step_id} could not be claimed"


def _deadlocks() -> int:
    """The deadlocks PostgreSQL counted in this (the session's own) database, every backend's
    included. A backend counts one in its pending statistics and flushes them when idle, at
    most once a second (PostgreSQL 15), else up to 10 s later; it flushes them as it exits,
    before it leaves pg_stat_activity. So this process's pools are closed, and their backends
    waited out, before the count is read."""
    pids = [row.pid for row in db.rows(_BACKENDS)]
    for autocommit in (False, True):
        get_engine(autocommit=autocommit).dispose()
    wait_until(lambda: not db.rows(_EXITING, pids=pids), 30, "the pools' backends to exit")
    return int(db.scalar(_DEADLOCKS))


_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
_EXITING = "SELECT pid FROM pg_stat_activity WHERE pid = ANY(:pids)"
_DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"


def _cancel(run_id: uuid.UUID) -> bool:
    return service.cancel_run(get_settings(), service.OPERATOR, run_id)


def _budget_refuses_right(run_id: uuid.UUID) -> bool:
    exceeded = BudgetExceeded("run", 1.0, 0.9, 0.0, 0.5)
    return stop_for_budget(run_id, "right", 1, exceeded)


# Which step A succeeds (``start`` alone, or ``left`` with ``right`` running beside it),
# the stop, and how the run and its steps end: the step that succeeded stays succeeded.
CASES: dict[str, tuple[str, list[str], Callable[[uuid.UUID], bool], str, dict[str, str]]] = {
    "cancel": (
        "start", ["start"], _cancel, "cancelled",
        {"start": "succeeded", "left": "cancelled", "right": "cancelled", "join": "cancelled"},
    ),
    "budget": (
        "left", ["left", "right"], _budget_refuses_right, "budget_exceeded",
        {"start": "succeeded", "left": "succeeded", "right": "skipped", "join": "skipped"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_stop_racing_a_steps_success_gives_way_instead_of_deadlocking(
    clean_state: None, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    succeeding, claimed, stop, run_status, step_statuses = CASES[case]
    run_id = service.submit(get_settings(), service.OPERATOR, "parallel", {"text": "x"}).run_id
    if succeeding != "start":
        _claim(run_id, "start")
        assert outcomes.record_success(run_id, "start", 1, {"text": "x"}, {"text": "x"})
    for step_id in claimed:
        _claim(run_id, step_id)
    remaining = int(db.scalar("SELECT steps_remaining FROM runs WHERE id = :id", id=run_id))
    caplog.set_level(logging.DEBUG, logger="hive.db.retrying")
    before = _deadlocks()

    with get_engine().connect() as a, ThreadPoolExecutor(1) as pool:
        # The success's first lock: its step's row.
        done = a.execute(
            text(
                "UPDATE step_runs SET status = 'succeeded', finished_at = now(),"
                " lease_until = NULL WHERE run_id = :id AND step_id = :step"
                " AND attempt = 1 AND status = 'running'"
            ),
            {"id": run_id, "step": succeeding},
        )
        assert done.rowcount == 1
        stopping = pool.submit(stop, run_id)
        # The stop has the run's row and met the step's: waiting for it (as it did), or
        # skipped it and gave way (as it does now).
        wait_until(
            lambda: waiting_for_locks() > 0 or "gave way" in caplog.text,
            30,
            "the stop to reach the steps' rows",
        )
        # The success's next lock: the run's row.
        a.execute(
            text("UPDATE runs SET steps_remaining = steps_remaining - 1 WHERE id = :id"),
            {"id": run_id},
        )
        a.commit()
        assert stopping.result(timeout=30) is True

    assert _deadlocks() == before
    assert "deadlock detected" not in caplog.text
    assert db.run_status(run_id) == run_status
    assert {step_id: row.status for step_id, row in db.steps_of(run_id).items()} == step_statuses
    # A's transaction committed whole: the run was counted down by its success.
    assert db.scalar("SELECT steps_remaining FROM runs WHERE id = :id", id=run_id) == remaining - 1


def test_a_stop_that_a_steps_row_keeps_refusing_waits_for_it_and_ends_the_run(
    clean_state: None,
) -> None:
    # A holds the step's row and never takes the run's: past its patience the stop stops
    # giving way and waits for the row, as any transaction does, and ends the run after A.
    run_id = service.submit(get_settings(), service.OPERATOR, "parallel", {"text": "x"}).run_id
    _claim(run_id, "start")

    with get_engine().connect() as a, ThreadPoolExecutor(1) as pool:
        a.execute(
            text("SELECT 1 FROM step_runs WHERE run_id = :id AND step_id = 'start' FOR UPDATE"),
            {"id": run_id},
        )
        stopping = pool.submit(_cancel, run_id)
        wait_until(lambda: waiting_for_locks() > 0, 30, "the stop to wait for the step's row")
        a.commit()
        assert stopping.result(timeout=30) is True

    assert db.run_status(run_id) == "cancelled"
    assert {step_id: row.status for step_id, row in db.steps_of(run_id).items()} == dict.fromkeys(
        ("start", "left", "right", "join"), "cancelled"
    )
