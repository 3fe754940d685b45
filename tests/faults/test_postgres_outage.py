"""PostgreSQL unreachable in the middle of a run: steps retry their writes and the run ends
once; a claim that cannot reach it puts its message back; the worker's main process does not
wait for it; a submit during the outage fails clearly and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from hive import Client, RunFailed, keys
from hive.tasks.app import app
from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(180)


def test_runs_finish_once_when_postgres_is_cut_for_ten_seconds_mid_run(
    hive_env, start_worker, start_beat, pg_proxy, success_audit
) -> None:
    proxy, proxied_url = pg_proxy
    env = {**FAST, "HIVE_DATABASE_URL": proxied_url}
    worker = start_worker("--concurrency", "2", extra_env=env)
    start_beat(extra_env=env)
    run_ids = producer.submit(
        {**os.environ, **hive_env, **env},
        "fault-fan",
        [{"text": f"r{i}", "seconds": 0.3} for i in range(20)],
    )
    wait_until(
        lambda: db.scalar("SELECT count(*) FROM step_runs WHERE status = 'succeeded'") >= 5,
        60,
        "some steps to finish",
    )

    proxy.cut()
    time.sleep(10)
    proxy.restore()

    client = Client()  # reads through the direct URL, not the proxy
    for run_id in run_ids:
        client.run(run_id).wait(timeout=120)
    assert db.scalar("SELECT count(*) FROM runs WHERE status = 'succeeded'") == len(run_ids)
    assert db.duplicate_successes() == 0
    assert "database unreachable" in worker.log(), "the outage must have hit the worker"


def test_a_claim_cut_off_from_postgres_past_its_step_s_time_limit_puts_its_message_back(
    hive_env, start_worker, start_beat, pg_proxy, success_audit
) -> None:
    proxy, proxied_url = pg_proxy
    env = {**FAST, "HIVE_DATABASE_URL": proxied_url}
    worker = start_worker("--concurrency", "1", extra_env=env)
    start_beat(extra_env=env)

    proxy.cut()
    # The step's soft time limit (2 s) strikes while its claim still waits for the database.
    run = Client().submit("fault-quick", {"text": "x"})  # through the direct URL
    worker.wait_for_log("database unreachable at claim", timeout_s=30)
    time.sleep(4)
    proxy.restore()

    # Not the re-send 600 s later: the message itself comes back.
    assert run.wait(timeout=40) == {"only": {"text": "x"}}
    assert db.duplicate_successes() == 0
    assert "SoftTimeLimitExceeded" not in worker.log()


def test_a_maintenance_task_gives_up_on_an_unreachable_postgres_and_frees_its_worker_slot(
    hive_env, start_worker, pg_proxy, success_audit
) -> None:
    proxy, proxied_url = pg_proxy
    worker = start_worker(
        "--concurrency", "1", extra_env={**FAST, "HIVE_DATABASE_URL": proxied_url}
    )

    proxy.cut()
    # Beat's recovery reaches the one slot first; it used to wait out the outage there
    # (HIVE_DB_RETRY_S, 120 s) while the step's message queued behind it.
    app.send_task(keys.RECOVER_TASK, queue=keys.MAINTENANCE_QUEUE)
    worker.wait_for_log("database unreachable; retrying", timeout_s=30)
    run = Client().submit("fault-quick", {"text": "x"})  # through the direct URL
    worker.wait_for_log("recover skipped", timeout_s=60)
    worker.wait_for_log("database unreachable at claim", timeout_s=60)
    proxy.restore()

    assert run.wait(timeout=60) == {"only": {"text": "x"}}
    assert db.duplicate_successes() == 0


def test_the_worker_does_not_wait_for_postgres_to_record_a_hard_timed_out_attempt(
    hive_env, start_worker, start_beat, pg_proxy
) -> None:
    proxy, proxied_url = pg_proxy
    env = {**FAST, "HIVE_DATABASE_URL": proxied_url}
    worker = start_worker("--concurrency", "1", extra_env=env)
    run = Client().submit("fault-hang", {})
    wait_until(lambda: db.run_status(run.id) == "running", 30, "the step to start")

    proxy.cut()
    # The hard limit (6 s) kills the attempt; the main process tries once and moves on,
    # instead of retrying for HIVE_DB_RETRY_S (120 s) with its consumer frozen.
    worker.wait_for_log("could not record lost attempt", timeout_s=30)
    proxy.restore()

    # The lease covers it (unless Celery's second failure signal for the same timeout finds
    # the database back): recovery takes the step back, and its last attempt fails the run.
    start_beat(extra_env=env)
    with pytest.raises(RunFailed):
        run.wait(timeout=60)
    outcomes = [(a.attempt, a.error["type"]) for a in db.attempts_of(run.id, "stuck")]
    assert [attempt for attempt, _ in outcomes] == [1, 2]
    assert outcomes[0][1] in {"lease_expired", "timeout"}
    assert outcomes[1][1] == "timeout"


def test_submit_fails_clearly_and_stores_nothing_while_postgres_is_down(
    hive_env, clean_state, pg_proxy
) -> None:
    proxy, proxied_url = pg_proxy
    proxy.cut()
    env = {**os.environ, **hive_env, "HIVE_DATABASE_URL": proxied_url}
    done = subprocess.run(
        [sys.executable, "-m", "hive.cli", "submit", "fault-chain3", "--input", '{"text": "x"}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "HIVE_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr
    proxy.restore()
    assert db.scalar("SELECT count(*) FROM runs") == 0
    assert db.scalar("SELECT count(*) FROM step_runs") == 0
