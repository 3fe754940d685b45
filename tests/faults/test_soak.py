"""Soak: 200 fan-out/fan-in runs while workers are killed at random and Redis restarts empty."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time

import pytest

from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(600)

RUNS = 200
KILLS = 6


def _finished() -> int:
    return int(
        db.scalar("SELECT count(*) FROM runs WHERE status <> 'queued' AND status <> 'running'")
    )


def test_every_run_succeeds_once_through_worker_kills_and_a_redis_restart(
    hive_env, start_worker, start_beat, own_redis, success_audit
) -> None:
    rng = random.Random(20261121)
    # A whole worker killed between fetching a message and claiming its step leaves the
    # message in Redis's unacked hash until the visibility timeout; only the age-based
    # re-send finds that step. Here that age is a minute, so the test can wait for it.
    env = {**FAST, "HIVE_BROKER_URL": own_redis.url, "HIVE_REDISPATCH_AFTER_S": "60"}
    workers = [start_worker("--concurrency", "2", extra_env=env, name=f"soak{i}") for i in range(2)]
    start_beat(extra_env=env)
    run_ids = producer.submit(
        {**os.environ, **hive_env, **env},
        "fault-fan",
        [{"text": f"soak {i}", "seconds": 0.15} for i in range(RUNS)],
    )

    kills = {"worker": 0, "pool process": 0}
    restarted = False
    spawned = len(workers)
    for k in range(KILLS):
        time.sleep(rng.uniform(1.0, 2.5))
        victim = rng.choice(workers)
        children = victim.children()
        if k % 2 == 0 and children:
            # A pool process may have ended on its own since it was listed (replaced by its
            # worker): then there is nothing to kill this round.
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(children), signal.SIGKILL)
                kills["pool process"] += 1
        else:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.proc.wait(timeout=10)
            workers.remove(victim)
            workers.append(start_worker("--concurrency", "2", extra_env=env, name=f"soak{spawned}"))
            spawned += 1
            kills["worker"] += 1
        if k == KILLS // 2:
            own_redis.restart_empty()
            restarted = True
    in_flight_after_faults = RUNS - _finished()

    try:
        wait_until(lambda: _finished() == RUNS, 240, "every run to finish")
    except TimeoutError:
        stuck = db.rows(
            "SELECT s.run_id, s.step_id, s.status, s.attempt, s.pending_needs, s.enqueued_at,"
            " s.lease_until, s.worker FROM step_runs s JOIN runs r ON r.id = s.run_id"
            " WHERE r.status IN ('queued', 'running') AND s.status IN ('pending', 'running')"
            " LIMIT 20"
        )
        events = db.rows("SELECT kind, count(*) AS n FROM events GROUP BY kind")
        logs = "\n".join(w.log()[-3000:] for w in workers)
        raise AssertionError(f"stuck steps: {stuck}\nevents: {events}\nlogs:\n{logs}") from None
    statuses = db.rows("SELECT status, count(*) AS n FROM runs GROUP BY status")
    succeeded = sum(r.n for r in statuses if r.status == "succeeded")
    steps_ok = db.scalar("SELECT count(*) FROM step_runs WHERE status = 'succeeded'")
    duplicates = db.duplicate_successes()
    retried = db.scalar("SELECT count(*) FROM step_attempts")
    print(
        f"\nsoak: runs={RUNS} succeeded={succeeded} steps={steps_ok} kills={sum(kills.values())} "
        f"({kills}) redis_restarts={int(restarted)} failed_attempts={retried} "
        f"in_flight_after_faults={in_flight_after_faults} lost={RUNS - succeeded} "
        f"duplicate_successes={duplicates}"
    )
    assert len(run_ids) == RUNS
    assert sum(kills.values()) >= 5 and restarted
    assert in_flight_after_faults > 0, "the faults must land while runs are in flight"
    assert {r.status for r in statuses} == {"succeeded"}
    assert steps_ok == RUNS * 5
    assert db.scalar("SELECT count(*) FROM test_success_audit") == RUNS * 5
    assert duplicates == 0
