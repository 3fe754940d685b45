"""Retryable failures are retried within max_retries, and every failed attempt is recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hive import Client, RunFailed, service
from hive.settings import get_settings
from tests.support.db import attempts_of, store_run
from tests.support.processes import HiveProcess


@pytest.mark.timeout(120)
def test_step_retries_until_success_when_agent_raises_retryable(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2")

    run = Client().submit("flaky", {"times": 2})
    output = run.wait(timeout=30)

    assert output == {"flaky": {"attempt": 3}}
    (step,) = run.view().steps
    assert (step.status, step.attempts, step.error) == ("succeeded", 3, None)
    attempts = attempts_of(str(run.id), "flaky")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "retried"), (2, "retried")]
    for a in attempts:
        assert a.error["type"] == "RetryableError"
        assert a.error["message"] == "induced failure"
        assert "RetryableError: induced failure" in a.error["traceback"]
        assert a.worker is not None
        assert a.started_at is not None
        assert a.finished_at >= a.started_at
    assert step.started_at is not None
    assert step.started_at >= attempts[-1].finished_at


@pytest.mark.timeout(120)
def test_step_fails_when_retryable_failures_outlast_max_retries(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2")

    # flaky-limited overrides the fail agent's max_retries (5) with 1.
    run = Client().submit("flaky-limited", {"times": 5})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=30)

    view = run.view()
    assert view.status == "failed"
    (step,) = view.steps
    assert (step.status, step.attempts) == ("failed", 2)
    assert step.error is not None
    assert step.error["type"] == "RetryableError"
    assert step.error["message"] == "induced failure"
    assert [(a.attempt, a.outcome) for a in attempts_of(view.id, "flaky")] == [
        (1, "retried"),
        (2, "failed"),
    ]
    # Here the failure is the run's first finished step, so its error is recorded.
    assert raised.value.step_id == "flaky"
    assert view.error is not None
    assert view.error["step_id"] == "flaky"


@pytest.mark.timeout(120)
def test_options_missing_from_a_stored_step_take_the_agent_options_defaults(
    start_worker: Callable[..., HiveProcess],
) -> None:
    """A row written without max_retries and timeout (by an older Hive, or by hand) runs with
    AgentOptions' defaults: 3 retries (not 0) and a 300 s timeout (its lease and time limit)."""
    import dataclasses
    import uuid

    from hive.agents.base import AgentOptions
    from hive.db.options import step_options
    from hive.pipelines import plan_steps
    from hive.tasks.dispatch import dispatch_new_run

    start_worker("--concurrency", "2")
    spec = service.get_pipeline(get_settings(), service.OPERATOR, "flaky")
    plan = [
        dataclasses.replace(
            step, options={"queue": step_options(step.options).queue, "retry_backoff": 0.05}
        )
        for step in plan_steps(spec)
    ]
    run_id = uuid.uuid4()
    publication = dispatch_new_run(run_id, plan, "normal")

    store_run("flaky", {"times": 10}, run_id=run_id, plan=plan, sent=publication.step_ids)
    publication.send()
    with pytest.raises(RunFailed):
        Client().run(run_id).wait(timeout=60)

    attempts = attempts_of(run_id, "flaky")
    assert AgentOptions().max_retries == 3
    assert [a.outcome for a in attempts] == ["retried", "retried", "retried", "failed"]


@pytest.mark.timeout(120)
def test_a_retry_waits_for_the_retry_after_its_error_carries(
    start_worker: Callable[..., HiveProcess],
) -> None:
    """The agent's backoff is 0: only the Retry-After (3 s) can delay its retry, which must
    not start before it (a lower bound, whatever the machine's load)."""
    start_worker("--concurrency", "2")

    run = Client().submit("retry-after", {"times": 1, "retry_after_s": 3})
    assert run.wait(timeout=60) == {"throttled": {"attempt": 2}}

    (failed,) = attempts_of(str(run.id), "throttled")
    assert (failed.attempt, failed.outcome) == (1, "retried")
    assert failed.error["retry_after_s"] == 3.0
    (step,) = run.view().steps
    assert (step.status, step.attempts) == ("succeeded", 2)
    assert step.started_at is not None
    assert (step.started_at - failed.finished_at).total_seconds() >= 3.0 - 0.05


@pytest.mark.timeout(120)
def test_a_server_the_agent_needs_being_unreachable_is_recorded_and_retried(
    start_worker: Callable[..., HiveProcess],
) -> None:
    """ServiceUnavailable is transient: the attempt is recorded as retried, with its error,
    and the next attempt runs (before, recording its error read a
    ``retry_after_s`` the class never set: the failure escaped the step and the step sat
    running until its lease ran out)."""
    start_worker("--concurrency", "2")

    run = Client().submit("unavailable", {"times": 2})
    assert run.wait(timeout=60) == {"unreachable": {"attempt": 3}}

    failed = attempts_of(str(run.id), "unreachable")[:2]
    assert [(a.attempt, a.outcome) for a in failed] == [(1, "retried"), (2, "retried")]
    for attempt in failed:
        assert attempt.error["type"] == "ServiceUnavailable"
        assert attempt.error["message"] == (
            "cannot reach the server at its database: connection refused"
        )
        assert "retry_after_s" not in attempt.error
