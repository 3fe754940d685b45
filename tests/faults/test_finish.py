"""A run whose last step was recorded but which was never closed is closed by recovery."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from hive.errors import RunFailed
from tests.support import db

pytestmark = pytest.mark.timeout(120)


def _left_open(*run_ids: object) -> None:
    """Finished runs back to running, unclosed: what a worker leaves when it dies after its
    last step's one-statement success and before the transaction that closes the run."""
    db.execute(
        "UPDATE runs SET status = 'running', output = NULL, finished_at = NULL"
        " WHERE id = ANY(CAST(:ids AS uuid[]))",
        ids=[str(run_id) for run_id in run_ids],
    )


def test_recovery_closes_a_run_whose_last_step_succeeded_but_which_was_left_open(
    hive_env, start_worker
) -> None:
    from hive.beat.tasks import recover_now

    start_worker("--concurrency", "1")
    run = Client().submit("fault-chain3", {"text": "closed late"})
    assert run.wait(timeout=30) == {"c": {"text": "closed late"}}
    # The state a worker leaves when it dies right after recording a step's success on
    # its own (one statement) and before the transaction that closes the run.
    _left_open(run.id)
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
    _left_open(run.id)
    assert client.cancel(run.id) is False, "nothing was left to stop"
    told = subprocess.run(
        [sys.executable, "-m", "hive.cli", "runs", "cancel", str(run.id)],
        env={**os.environ, **hive_env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert told.returncode == 1 and "it is closing" in told.stderr, told.stderr
    assert db.run_status(run.id) == "running"
    report = recover_now()
    assert report is not None and report["finished_runs"] == 1
    assert run.wait(timeout=5) == {"c": {"text": "all done"}}


def test_recovery_does_not_close_a_run_replayed_after_it_found_the_run_left_open(
    hive_env, start_worker
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from hive.beat.tasks import recover_now
    from tests.support.processes import wait_until
    from tests.support.racing import waiting_for_locks

    start_worker("--concurrency", "1")
    client = Client()
    first = client.submit("fault-chain3", {"text": "first"})
    assert first.wait(timeout=30) == {"c": {"text": "first"}}
    failing = client.submit("fault-dlq", {"times": 50})
    with pytest.raises(RunFailed):
        failing.wait(timeout=30)
    # Both left open by workers that died before closing them: the sweep finds both, and
    # closes the first (older) one first.
    _left_open(first.id, failing.id)
    with get_engine().connect() as hold, ThreadPoolExecutor(1) as pool:
        hold.execute(text("SELECT 1 FROM runs WHERE id = :id FOR UPDATE"), {"id": first.id})
        sweeping = pool.submit(recover_now)
        wait_until(lambda: waiting_for_locks() == 1, 30, "the sweep to wait for the first run")
        # Meanwhile the second run is closed (its worker's second transaction after all)
        # and replayed by someone.
        db.execute(
            "UPDATE runs SET status = 'failed', finished_at = now() WHERE id = :id",
            id=str(failing.id),
        )
        assert client.replay(failing.id, {"times": 0}) == ["flaky", "last"]
        hold.commit()
        report = sweeping.result(timeout=30)
    assert report is not None and report["finished_runs"] == 1, "only the first run"
    assert client.run(failing.id).wait(timeout=30) == {"last": {"text": "done"}}
