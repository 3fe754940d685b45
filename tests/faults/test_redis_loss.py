"""Redis restarts empty while runs are queued and running: every run still finishes."""

from __future__ import annotations

import os

import pytest

from hive import Client
from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(180)


def test_every_run_finishes_when_redis_restarts_empty_mid_run(
    hive_env, start_worker, start_beat, own_redis, success_audit
) -> None:
    env = {**FAST, "HIVE_BROKER_URL": own_redis.url}
    start_worker("--concurrency", "2", extra_env=env)
    start_beat(extra_env=env)
    run_ids = producer.submit(
        {**os.environ, **hive_env, **env},
        "fault-fan",
        [{"text": f"r{i}", "seconds": 0.2} for i in range(30)],
    )
    wait_until(
        lambda: db.scalar("SELECT count(*) FROM runs WHERE status = 'succeeded'") >= 3,
        60,
        "a few runs to finish",
    )
    in_flight = db.scalar("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
    assert in_flight > 0, "the fault must land while runs are in flight"

    restarted_at = db.scalar("SELECT now()")
    own_redis.restart_empty()

    client = Client()
    for run_id in run_ids:
        client.run(run_id).wait(timeout=120)
    assert db.scalar("SELECT count(*) FROM runs WHERE status = 'succeeded'") == len(run_ids)
    assert db.duplicate_successes() == 0
    resets = db.rows(
        "SELECT detail FROM events WHERE kind = 'broker_reset' AND created_at > :t",
        t=restarted_at,
    )
    assert resets, "recovery should have noticed that the broker lost its data"
    print(
        f"\nredis restart: {len(run_ids)} runs, in flight {in_flight}, "
        f"sent steps forgotten {resets[0].detail['sent_steps_forgotten']}, lost 0"
    )
