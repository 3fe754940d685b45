"""A run whose last step was recorded but which was never closed is closed by recovery."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from tests.support import db

pytestmark = pytest.mark.timeout(120)


def test_recovery_closes_a_run_whose_last_step_succeeded_but_which_was_left_open(
    hive_env, start_worker
) -> None:
    from hive.beat.tasks import recover_now

    start_worker("--concurrency", "1")
    run = Client().submit("fault-chain3", {"text": "closed late"})
    assert run.wait(timeout=30) == {"c": {"text": "closed late"}}
    # The state a worker leaves when it dies right after recording a step's success on
    # its own (one statement) and before the transaction that closes the run.
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE runs SET status = 'running', output = NULL, finished_at = NULL"
                " WHERE id = :id"
            ),
            {"id": run.id},
        )
    report = recover_now()
    assert report is not None and report["finished_runs"] == 1
    assert db.run_status(run.id) == "succeeded"
    assert run.wait(timeout=5) == {"c": {"text": "closed late"}}
    again = recover_now()
    assert again is not None and again["finished_runs"] == 0


def test_a_cancel_between_the_last_steps_success_and_the_runs_close_leaves_it_succeeded(
    hive_env, start_worker
) -> None:
    from hive.beat.tasks import recover_now

    start_worker("--concurrency", "1")
    client = Client()
    run = client.submit("fault-chain3", {"text": "all done"})
    assert run.wait(timeout=30) == {"c": {"text": "all done"}}
    # Every step recorded, the run not yet closed: what a cancel meets between a last
    # step's one-statement success and the transaction that closes the run.
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE runs SET status = 'running', output = NULL, finished_at = NULL"
                " WHERE id = :id"
            ),
            {"id": run.id},
        )
    assert client.cancel(run.id) is False, "nothing was left to stop"
    assert db.run_status(run.id) == "running"
    report = recover_now()
    assert report is not None and report["finished_runs"] == 1
    assert run.wait(timeout=5) == {"c": {"text": "all done"}}
