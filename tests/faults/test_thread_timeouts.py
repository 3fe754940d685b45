"""Step timeouts under ``--pool threads``, where Celery enforces no time limits: the step is
abandoned at its timeout, its attempt recorded as a timeout and retried per its policy; an
agent that ignores the timeout does not keep its slot; too many such agents stop the worker
so that a clean one can take its place; an abandoned agent keeps its concurrency slot until
its thread ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive import Client
from hive.errors import RunFailed
from hive.tasks.deadline import EXIT_ABANDONED, MIN_ABANDONED_TO_STOP
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(180)

_THREADS = ("--pool", "threads")


def _attempt_errors(run_id: object, step_id: str) -> list[str]:
    return [a.error["type"] for a in db.attempts_of(run_id, step_id)]


def test_a_step_past_its_timeout_under_threads_is_recorded_as_a_timeout_and_retried(
    start_worker, success_audit
) -> None:
    start_worker(*_THREADS, "--concurrency", "4", extra_env=FAST)
    run = Client().submit("fault-timeout", {})  # sleep 10 s, timeout 1 s, one retry

    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)

    assert failed.value.step_id == "slow"
    step = db.steps_of(run.id)["slow"]
    assert (step.status, step.attempt) == ("failed", 2)
    assert _attempt_errors(run.id, "slow") == ["timeout", "timeout"]
    for attempt in db.attempts_of(run.id, "slow"):
        # Stopped at its timeout (1 s), not when the sleep would have ended (10 s).
        assert (attempt.finished_at - attempt.started_at).total_seconds() < 8
    letters = db.rows("SELECT error FROM dead_letters WHERE run_id = :id", id=str(run.id))
    assert [d.error["type"] for d in letters] == ["timeout"]


def test_an_agent_that_ignores_its_timeout_does_not_keep_its_thread_pool_slot(
    start_worker,
) -> None:
    worker = start_worker(*_THREADS, "--concurrency", "1", extra_env=FAST)
    stuck = Client().submit("fault-hang", {})  # hang 60 s, deaf to everything; timeout 1 s
    quick = Client().submit("fault-quick", {"text": "after the stuck one"})

    # The one slot serves the quick run long before the stuck agent's 60 s are over.
    assert quick.wait(timeout=40) == {"only": {"text": "after the stuck one"}}
    with pytest.raises(RunFailed):
        stuck.wait(timeout=40)
    assert _attempt_errors(stuck.id, "stuck") == ["timeout", "timeout"]
    assert worker.proc.poll() is None, "two abandoned threads are no reason to stop"
    assert "agent ran past its timeout; its thread is abandoned" in worker.log()


def test_a_worker_whose_abandoned_threads_fill_its_slots_stops_for_a_clean_restart(
    start_worker,
) -> None:
    worker = start_worker(*_THREADS, "--concurrency", "2", extra_env=FAST)
    runs = [Client().submit("fault-hang", {}) for _ in range(MIN_ABANDONED_TO_STOP)]

    wait_until(lambda: worker.proc.poll() is not None, 90, "the worker to stop")

    assert worker.proc.returncode == EXIT_ABANDONED
    assert "stopping this worker so that a clean one takes its place" in worker.log()
    timed_out = db.scalar(
        "SELECT count(*) FROM step_attempts WHERE error->>'type' = 'timeout'"
        " AND run_id = ANY(CAST(:ids AS uuid[]))",
        ids=[str(r.id) for r in runs],
    )
    assert timed_out >= MIN_ABANDONED_TO_STOP


def test_cancelling_a_run_frees_the_thread_of_its_agent_even_one_deaf_to_it(
    start_worker,
) -> None:
    worker = start_worker(*_THREADS, "--concurrency", "1", extra_env=FAST)
    client = Client()
    deaf = client.submit("fault-hang-long", {})  # hang 60 s; timeout 50 s
    wait_until(lambda: db.steps_of(deaf.id)["stuck"].status == "running", 30, "the step to run")

    assert client.cancel(deaf.id) is True
    quick = client.submit("fault-quick", {"text": "after the cancelled one"})

    # The waiting thread sees the cancellation within seconds, long before 50 s.
    assert quick.wait(timeout=30) == {"only": {"text": "after the cancelled one"}}
    assert db.steps_of(deaf.id)["stuck"].status == "cancelled"
    assert "agent belongs to a cancelled run; its thread is abandoned" in worker.log()
    assert "Traceback" not in worker.log()


def test_an_abandoned_agent_keeps_its_concurrency_slot_until_its_thread_ends(
    start_worker, tmp_path: Path
) -> None:
    """Concurrency 1 on the agent: the retry of a step whose first attempt was abandoned at
    its 1 s timeout must wait until that attempt's thread has ended (4 s), not start
    beside it."""
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  agent:hang: {concurrency: 1}\n")
    start_worker(
        *_THREADS, "--concurrency", "4", extra_env={**FAST, "HIVE_LIMITS_FILE": str(limits)}
    )
    run = Client().submit("fault-hang-brief", {})  # hang 4 s, timeout 1 s, one retry

    with pytest.raises(RunFailed):
        run.wait(timeout=60)

    first, second = db.attempts_of(run.id, "stuck")
    assert (first.error["type"], second.error["type"]) == ("timeout", "timeout")
    apart = (second.started_at - first.started_at).total_seconds()
    # The first agent's thread slept 4 s from its start; the slot came back then.
    assert apart >= 3.8, f"the retry started {apart:.2f}s after the abandoned attempt"
    assert db.steps_of(run.id)["stuck"].deferrals >= 1, "the retry waited for the slot"
