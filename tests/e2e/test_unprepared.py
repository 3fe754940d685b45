"""With HIVE_DB_PREPARED=false (PgBouncer in transaction mode) the farm works the same."""

from __future__ import annotations

import os

import pytest

from hive import Client
from tests.support import db, producer

pytestmark = pytest.mark.timeout(120)


def test_runs_succeed_with_prepared_statements_turned_off(hive_env, start_worker) -> None:
    env = {"HIVE_DB_PREPARED": "false"}
    start_worker("--concurrency", "2", extra_env=env)
    ids = producer.submit(
        {**os.environ, **hive_env, **env}, "doc-triage", [{"text": "Great day at x@y.io"}] * 3,
        idempotency_key=None,
    )  # fmt: skip
    for run_id in ids:
        output = Client().run(run_id).wait(timeout=60)
        assert output["merged"]["sentiment"]["label"] == "positive"
    assert db.scalar("SELECT count(*) FROM step_runs WHERE status = 'succeeded'") == 15
