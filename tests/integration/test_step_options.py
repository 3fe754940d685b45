"""Step options read from the database are AgentOptions: a missing option takes its default."""

from __future__ import annotations

import dataclasses

from hive import service
from hive.agents.base import AgentOptions
from hive.db import claims, marks
from hive.db.options import step_options
from hive.db.retrying import in_transaction, on_direct_cursor
from hive.pipelines import plan_steps
from hive.settings import get_settings
from tests.support import db


def test_stored_options_are_validated_once_and_missing_ones_take_the_defaults() -> None:
    stored = {"queue": "hive.default", "max_retries": 1}

    options = step_options(stored)

    assert options == AgentOptions(max_retries=1)
    assert options.timeout == AgentOptions().timeout
    assert step_options(dict(stored)) is options  # validated once, shared after
    assert step_options({}) == AgentOptions()


def test_a_step_stored_without_options_is_claimed_with_the_default_timeout(
    hive_env, clean_state
) -> None:
    spec = service.get_pipeline(get_settings(), service.OPERATOR, "flaky")
    plan = [dataclasses.replace(step, options={}) for step in plan_steps(spec)]
    run_id = db.store_run("flaky", {"times": 0}, plan=plan)
    (marked,) = in_transaction(lambda conn: marks.mark_enqueued(conn, run_id, ["flaky"]))
    assert marked.options == AgentOptions()
    claimed = on_direct_cursor(
        lambda cursor: claims.claim(
            cursor, run_id, "flaky", 1, worker="test", task_id=None, grace_s=10.0
        )
    )

    assert claimed is not None and claimed.options == AgentOptions()
    lease_s = db.scalar(
        "SELECT extract(epoch FROM lease_until - started_at) FROM step_runs WHERE run_id = :id",
        id=str(run_id),
    )
    assert float(lease_s) == AgentOptions().timeout + 10.0


def test_a_run_stores_only_the_options_that_differ_from_the_defaults(hive_env, clean_state) -> None:
    # The catalog's steps: agent options (sleep's timeout, flaky's queue...) and a step's own
    # overrides (flaky-limited's max_retries: 1).
    for name, spec in service.list_pipelines(get_settings(), service.OPERATOR).items():
        for step, planned in zip(spec.steps, plan_steps(spec), strict=True):
            defaults = AgentOptions().model_dump(mode="json")
            assert all(planned.options[k] != defaults[k] for k in planned.options), (name, step)
            assert step_options(planned.options) == step.options, (name, step.id)
    spec = service.get_pipeline(get_settings(), service.OPERATOR, "flaky-limited")
    run_id = db.store_run("flaky-limited", {"times": 0}, plan=plan_steps(spec))
    stored = db.scalar("SELECT options FROM step_runs WHERE run_id = :id", id=str(run_id))
    # The fail agent's own timeout and backoff, the step's max_retries; no default.
    assert stored == {"timeout": 60.0, "max_retries": 1, "retry_backoff": 0.1,
                      "retry_backoff_max": 1.0}  # fmt: skip
    (marked,) = in_transaction(lambda conn: marks.mark_enqueued(conn, run_id, ["flaky"]))
    assert marked.options == spec.steps[0].options
