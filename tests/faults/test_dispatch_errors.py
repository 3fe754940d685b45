"""A publish that fails is left to recovery only when the broker is unreachable; any other
failure would fail again on every sweep, so it is raised and recorded once."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from hive import Client
from hive.errors import DispatchError
from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import HiveProcess, wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(120)

# The Redis key of queue `fault-taken` at priority critical (no priority suffix).
TAKEN = "fault-taken"


def _sweeps_since(t: datetime) -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM events WHERE kind = 'maintenance'"
            " AND detail->>'task' = 'recover' AND created_at > :t",
            t=t,
        )
    )


def _events(kind: str, run_id: object) -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM events WHERE kind = :kind AND run_id = :id",
            kind=kind,
            id=str(run_id),
        )
    )


def test_a_step_whose_publish_fails_for_good_fails_once_instead_of_looping_through_recovery(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    redis_db: tuple[redis.Redis, int],
) -> None:
    broker, _ = redis_db
    worker = start_worker("--concurrency", "2", extra_env=FAST)
    start_beat(extra_env=FAST)
    broker.set(TAKEN, "another program's value")  # the queue's key holds a string

    run = Client().submit("fault-taken-queue", {"text": "x"}, priority="critical")
    wait_until(lambda: db.run_status(run.id) == "failed", 30, "the run to fail")
    assert db.run_status(run.id) == "failed"

    found = db.rows("SELECT failed_step, error FROM runs WHERE id = :id", id=str(run.id))[0]
    assert found.failed_step == "b"
    assert found.error["type"] == "dispatch_error"
    assert "WRONGTYPE" in found.error["message"]
    steps = db.steps_of(run.id)
    assert {s: steps[s].status for s in steps} == {
        "a": "succeeded", "a2": "succeeded", "b": "failed", "c": "skipped",
    }  # fmt: skip
    assert db.scalar("SELECT count(*) FROM dead_letters WHERE run_id = :id", id=str(run.id)) == 1

    # Recovery keeps sweeping every second and never tries it again.
    failed_at = db.scalar("SELECT now()")
    wait_until(lambda: _sweeps_since(failed_at) >= 4, 30, "four more recovery sweeps")
    assert _sweeps_since(failed_at) >= 4
    assert _events("dispatch_failed", run.id) == 1
    assert _events("redispatch", run.id) == 0
    assert worker.log().count("raised unexpected: DispatchError") == 1
    assert broker.type(TAKEN) == b"string"  # nothing was pushed onto it


def test_recovery_records_a_step_it_cannot_publish_once_and_sweeps_on(
    hive_env: dict[str, str], clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    from hive.beat.tasks import recover_now

    broker, _ = redis_db
    recover_now()  # the first sweep on an empty broker: get it done
    unsent = Client().submit("fault-taken-root", {"text": "never sent"}, priority="critical")
    overdue = Client().submit("fault-taken-root", {"text": "sent long ago"}, priority="critical")
    other = Client().submit("fault-chain3", {"text": "fine"})
    # Their messages are gone and the queue's key is taken. One step's mark was forgotten
    # (as after a publish that met a broker outage), the other's is an hour old.
    broker.delete(TAKEN)
    broker.set(TAKEN, "another program's value")
    from sqlalchemy import text

    from hive.db.engine import get_engine

    with get_engine().begin() as conn:
        conn.execute(text("UPDATE step_runs SET enqueued_at = NULL WHERE run_id = :id"),
                     {"id": unsent.id})  # fmt: skip
        conn.execute(text("UPDATE step_runs SET enqueued_at = now() - interval '1 hour'"
                          " WHERE run_id = :id"), {"id": overdue.id})  # fmt: skip

    report = recover_now()
    assert db.run_status(unsent.id) == "failed"
    assert db.run_status(overdue.id) == "failed"
    assert db.run_status(other.id) == "queued"  # the sweep went on past them
    assert report is not None
    assert report["undeliverable_steps"] == 2

    again = recover_now()
    assert again is not None
    assert again["undeliverable_steps"] == 0 and again["redispatched_steps"] == 0
    assert _events("dispatch_failed", unsent.id) == _events("dispatch_failed", overdue.id) == 1


def test_a_run_submitted_while_redis_is_unreachable_is_sent_by_recovery_once_it_is_back(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    redis_db: tuple[redis.Redis, int],
) -> None:
    from hive.beat.tasks import recover_now

    recover_now()  # leaves the broker's marker: the sweep below is not a broker reset
    url = urlsplit(hive_env["HIVE_BROKER_URL"])
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379)
    try:
        proxy.cut()
        cut_url = urlunsplit(url._replace(netloc=f"127.0.0.1:{proxy.port}"))
        env = {**os.environ, **hive_env, "HIVE_BROKER_URL": cut_url}
        [run_id] = producer.submit(env, "fault-chain3", [{"text": "while redis is away"}])
    finally:
        proxy.close()
    assert db.rows("SELECT enqueued_at FROM step_runs WHERE run_id = :id", id=run_id)
    assert (
        db.scalar(
            "SELECT count(*) FROM step_runs WHERE run_id = :id AND enqueued_at IS NOT NULL",
            id=run_id,
        )
        == 0
    ), "a publish that met an unreachable broker leaves the steps to recovery"
    assert db.run_status(run_id) == "queued"

    start_worker("--concurrency", "1")
    report = recover_now()
    assert report is not None
    assert report["broker_reset"] is False
    assert report["redispatched_steps"] == 3 and report["undeliverable_steps"] == 0
    assert Client().run(run_id).wait(timeout=30) == {"c": {"text": "while redis is away"}}
    assert _events("dispatch_failed", run_id) == 0


def test_in_a_group_only_the_stretch_that_cannot_be_published_fails(
    hive_env: dict[str, str], clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    from hive import keys
    from hive.tasks.backlog import queued_messages

    broker, _ = redis_db
    broker.set(TAKEN, "another program's value")
    # The producer hears of it (or not: the client may log it); the run records it.
    with contextlib.suppress(DispatchError):
        Client().submit("fault-taken-fan", {"text": "x"}, priority="critical")
    [run_id] = [r.id for r in db.rows("SELECT id FROM runs")]
    steps = db.steps_of(run_id)
    assert steps["bad"].status == "failed" and steps["bad"].error["type"] == "dispatch_error"
    assert steps["ok"].status == "pending" and steps["ok"].enqueued_at is not None
    assert steps["ok"].publish_by is None  # its publish went through and was confirmed
    # The batch may have pushed `ok` before it failed: a second copy is dropped by the claim.
    assert 1 <= queued_messages([keys.DEFAULT_QUEUE])[keys.DEFAULT_QUEUE] <= 2
    assert _events("dispatch_failed", run_id) == 1
