"""A step that fails for good: the run fails, what needs the step is skipped, branches that do
not need it still run, and every producer is told which step failed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from hive import Client, RunFailed
from tests.support.commands import describe, run_hive
from tests.support.db import attempts_of
from tests.support.processes import HiveProcess


@pytest.mark.timeout(120)
def test_a_step_that_fails_for_good_fails_the_run_skips_its_dependents_and_spares_other_branches(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2")

    run = Client().submit("fails-midway", {"text": "x"})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=30)

    assert raised.value.status == "failed"
    view = run.view()
    assert view.status == "failed"
    assert view.output is None
    steps = {s.step_id: s for s in view.steps}
    assert {k: (s.status, s.attempts) for k, s in steps.items()} == {
        "start": ("succeeded", 1),
        "doomed": ("failed", 1),
        "after_doomed": ("skipped", 0),
        "bystander": ("succeeded", 1),
        "report": ("skipped", 0),
    }
    doomed = steps["doomed"]
    assert doomed.error is not None
    assert doomed.error["type"] == "PermanentError"
    assert doomed.error["message"] == "doomed on purpose"
    assert "Traceback" in doomed.error["traceback"]
    assert "PermanentError: doomed on purpose" in doomed.error["traceback"]
    assert doomed.output is None
    # A permanent error is not retried: one attempt, recorded as failed.
    assert [(r.attempt, r.outcome, r.error["type"]) for r in attempts_of(view.id, "doomed")] == [
        (1, "failed", "PermanentError")
    ]
    # The bystander was running when doomed failed; the run ended only once it was done.
    assert steps["bystander"].output["slept"] >= 0.5  # slept in full (a loaded machine oversleeps)
    assert view.finished_at is not None
    assert steps["bystander"].finished_at is not None
    assert view.finished_at >= steps["bystander"].finished_at


@pytest.mark.timeout(120)
def test_a_failed_run_names_the_failed_step_in_its_error_run_failed_and_the_cli(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker("--concurrency", "2")

    run = Client().submit("fails-midway", {"text": "x"})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=30)
    view = run.view()
    cli = run_hive(
        "submit", "fails-midway", "--input", '{"text": "x"}', "--wait", "--timeout", "60",
        env=env,
    )  # fmt: skip

    assert view.error is not None, "the failed run records no error"
    assert view.error["step_id"] == "doomed"
    assert view.error["type"] == "PermanentError"
    assert view.error["message"] == "doomed on purpose"
    assert raised.value.step_id == "doomed"
    assert "doomed" in str(raised.value)
    assert cli.returncode == 1, describe(cli)
    cli_run = json.loads(cli.stdout.partition("\n")[2])
    assert cli_run["error"]["step_id"] == "doomed"
    assert "'doomed'" in cli.stderr, describe(cli)


@pytest.mark.timeout(120)
def test_a_run_whose_output_names_data_its_steps_did_not_produce_fails_saying_so(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "1")

    run = Client().submit("output-unresolved", {"text": "x"})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=30)

    view = run.view()
    assert {s.step_id: s.status for s in view.steps} == {"a": "succeeded", "m": "succeeded"}
    assert view.status == "failed"
    assert view.error is not None
    assert view.error["type"] == "output_unresolved"
    assert "$steps.m.merged.nope" in view.error["message"]
    assert "output_unresolved" in str(raised.value)
