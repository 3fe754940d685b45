"""SIGTERM lets the step in progress finish; a second signal is a cold shutdown whose
interrupted step is recovered."""

from __future__ import annotations

import signal

import pytest

from hive import Client
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


def _nap_running(run_id: object) -> bool:
    return db.steps_of(run_id)["nap"].status == "running"


def test_warm_shutdown_finishes_the_step_in_progress_and_loses_nothing(
    start_worker, success_audit
) -> None:
    first = start_worker("--concurrency", "1", extra_env=FAST, name="first")
    run = Client().submit("fault-sleep", {"seconds": 2})
    wait_until(lambda: _nap_running(run.id), 20, "the step to start")

    first.signal(signal.SIGTERM)
    first.proc.wait(timeout=30)

    nap = db.steps_of(run.id)["nap"]
    assert (nap.status, nap.attempt) == ("succeeded", 1), "warm shutdown waits for the step"
    start_worker("--concurrency", "1", extra_env=FAST, name="second")
    assert run.wait(timeout=30) == {"after": {"text": "after the nap"}}
    assert db.steps_of(run.id)["after"].worker.startswith("second@")
    assert db.duplicate_successes() == 0


def test_cold_shutdown_interrupts_the_step_and_recovery_runs_it_again(
    start_worker, start_beat, success_audit
) -> None:
    first = start_worker("--concurrency", "1", extra_env=FAST, name="first")
    run = Client().submit("fault-sleep", {"seconds": 3})
    wait_until(lambda: _nap_running(run.id), 20, "the step to start")

    first.signal(signal.SIGTERM)
    first.signal(signal.SIGQUIT)  # the second signal: cold shutdown, no waiting
    first.proc.wait(timeout=30)

    start_worker("--concurrency", "1", extra_env=FAST, name="second")
    start_beat(extra_env=FAST)
    run.wait(timeout=60)
    nap = db.steps_of(run.id)["nap"]
    assert nap.status == "succeeded"
    assert nap.attempt == 2
    assert nap.worker.startswith("second@")
    assert db.duplicate_successes() == 0
