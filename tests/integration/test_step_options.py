"""Step options read from the database are AgentOptions: a missing option takes its default."""

from __future__ import annotations

import dataclasses
import uuid

from hive import service
from hive.agents.base import AgentOptions
from hive.db import claims, marks
from hive.db import runs as run_store
from hive.db.options import step_options
from hive.db.retrying import DirectCursor, in_transaction, on_direct_cursor
from hive.pipelines import output_spec, plan_steps
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
    run_id = uuid.uuid4()

    def store(cursor: DirectCursor) -> uuid.UUID:
        return run_store.insert_run(
            cursor,
            run_id=run_id,
            pipeline=spec.name,
            pipeline_version=spec.version,
            tenant=None,
            priority="normal",
            run_input={"times": 0},
            output_spec=output_spec(spec),
            steps=plan,
        )

    on_direct_cursor(store)
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
