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
