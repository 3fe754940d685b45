"""Cancellation and deadlines."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from hive import Client
from hive.errors import RunFailed
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


def test_cancel_stops_the_running_step_and_no_new_step_starts(hive_env, start_worker) -> None:
    start_worker("--concurrency", "1")
    client = Client()
    run = client.submit("fault-sleep", {"seconds": 30})
    wait_until(lambda: db.steps_of(run.id)["nap"].status == "running", 20, "the step to start")

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hive.cli", "runs", "cancel", str(run.id)],
        env={**os.environ, **hive_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with pytest.raises(RunFailed) as stopped:
        run.wait(timeout=10)
    assert stopped.value.status == "cancelled"
    steps = db.steps_of(run.id)
    assert steps["nap"].status == "cancelled"
    assert steps["after"].status == "cancelled"
    assert steps["after"].attempt == 0, "no new step of a cancelled run starts"
    # The revoked agent stops promptly; its late finish is an event, not a status.
    wait_until(
        lambda: db.scalar("SELECT count(*) FROM events WHERE kind = 'late_finish'") == 1,
        15,
        "the revoked attempt to end",
    )
    assert time.monotonic() - started < 15
    assert client.cancel(run.id) is False  # already over


def test_a_run_past_its_deadline_ends_expired(start_worker, start_beat) -> None:
    start_worker("--concurrency", "1", extra_env=FAST)
    start_beat(extra_env=FAST)
    run = Client().submit("fault-sleep", {"seconds": 20}, deadline=1.5)
    with pytest.raises(RunFailed) as stopped:
        run.wait(timeout=30)
    assert stopped.value.status == "expired"
    assert {s.status for s in db.steps_of(run.id).values()} == {"cancelled"}
