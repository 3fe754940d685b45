"""Two beats never run the same maintenance at once; retention purges only what is old."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from hive.beat.lock import broker_redis, held
from tests.faults.conftest import FAST
from tests.support import db

pytestmark = pytest.mark.timeout(120)


def test_two_beats_never_run_the_same_maintenance_at_once(start_worker, start_beat) -> None:
    start_worker("--concurrency", "2", extra_env=FAST)
    start_beat(extra_env=FAST)
    start_beat(extra_env=FAST)
    time.sleep(8)

    runs = db.rows(
        "SELECT detail FROM events WHERE kind = 'maintenance' AND detail->>'task' = 'recover'"
    )
    spans = sorted(
        (datetime.fromisoformat(r.detail["started"]), datetime.fromisoformat(r.detail["finished"]))
        for r in runs
    )
    assert len(spans) >= 4, "both beats should have been sending recovery every second"
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two recovery sweeps overlapped"


def test_maintenance_command_refuses_while_another_holds_the_lock(hive_env, clean_state) -> None:
    env = {**os.environ, **hive_env}
    client = broker_redis()
    with held(client, "recover", ttl_s=30) as mine:
        assert mine
        done = subprocess.run(
            [sys.executable, "-m", "hive.cli", "maintenance", "recover"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert "already running elsewhere" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "hive.cli", "maintenance", "recover"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_purge_deletes_finished_runs_older_than_retention_and_keeps_the_rest(
    hive_env, start_worker
) -> None:
    from hive import Client
    from hive.beat.tasks import purge_now

    start_worker("--concurrency", "1")
    client = Client()
    old, recent = (client.submit("fault-chain3", {"text": t}) for t in ("old", "recent"))
    old.wait(timeout=30)
    recent.wait(timeout=30)
    active = client.submit("fault-sleep", {"seconds": 30})
    db.rows("SELECT 1")  # connection warm-up
    from sqlalchemy import text

    from hive.db.engine import get_engine

    with get_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE runs SET finished_at = now() - interval '40 days',"
                " created_at = now() - interval '40 days' WHERE id IN (:old, :active)"
            ),
            {"old": str(old.id), "active": str(active.id)},
        )
    result = purge_now()
    assert result is not None and result["runs"] == 1
    remaining = {r.id for r in db.rows("SELECT id FROM runs")}
    assert {str(x) for x in remaining} == {str(recent.id), str(active.id)}
    assert db.scalar("SELECT count(*) FROM step_runs WHERE run_id = :id", id=str(old.id)) == 0
    client.cancel(active.id)


def test_purge_spares_an_old_failed_run_that_a_replay_reopens_while_it_deletes(
    hive_env, start_worker
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    from hive import Client
    from hive.beat.tasks import purge_now
    from hive.db.engine import get_engine
    from hive.errors import RunFailed
    from tests.support.processes import wait_until
    from tests.support.racing import waiting_for_locks

    start_worker("--concurrency", "1")
    client = Client()
    run = client.submit("fault-dlq", {"times": 50})
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    db.execute(
        "UPDATE runs SET finished_at = now() - interval '40 days',"
        " created_at = now() - interval '40 days' WHERE id = :id",
        id=str(run.id),
    )
    # The replay locks the run's row, then waits for its failed step's row, held here; the
    # purge, having read the run as failed and old, waits for the run's row. Let go, the
    # replay reopens the run and commits first.
    with get_engine().connect() as hold, ThreadPoolExecutor(2) as pool:
        hold.execute(
            text("SELECT 1 FROM step_runs WHERE run_id = :id AND step_id = 'flaky' FOR UPDATE"),
            {"id": str(run.id)},
        )
        replaying = pool.submit(client.replay, run.id, {"times": 0})
        wait_until(lambda: waiting_for_locks() == 1, 30, "the replay to wait for the step")
        purging = pool.submit(purge_now)
        wait_until(lambda: waiting_for_locks() == 2, 30, "the purge to wait for the run")
        hold.commit()
        assert replaying.result(timeout=30) == ["flaky", "last"]
        purged = purging.result(timeout=30)
    assert purged is not None and purged["runs"] == 0, "the replayed run was purged"
    assert client.run(run.id).wait(timeout=30) == {"last": {"text": "done"}}


@pytest.mark.parametrize("held", ["event", "step"])
def test_purge_keeps_the_old_events_of_a_run_a_replay_reopens_while_it_deletes(
    hive_env, start_worker, held: str
) -> None:
    """A purge batch and a replay of a run whose history is old, in either order: the batch
    held at one of the run's events (its snapshot read the run finished) while the replay
    comes, or the replay held at its failed step (the run's row locked) while the batch
    comes. Whichever commits first, the purge never deletes the history of a run the replay
    had already reopened; had the replay waited for the purge instead, the run was finished
    until the batch committed, and deleting its old events was the purge's right."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    from hive import Client
    from hive.beat.tasks import purge_now
    from hive.db.engine import get_engine
    from hive.errors import RunFailed
    from tests.support.processes import wait_until
    from tests.support.racing import waiting_for_locks

    start_worker("--concurrency", "1")
    client = Client()
    run = client.submit("fault-dlq", {"times": 50})
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    # The run is recent (retention keeps it); its history is old.
    db.execute("INSERT INTO events (run_id, kind) SELECT :id, 'history' FROM generate_series(1, 3)",
               id=str(run.id))  # fmt: skip
    db.execute("UPDATE events SET created_at = now() - interval '40 days' WHERE run_id = :id",
               id=str(run.id))  # fmt: skip
    old_events = db.scalar("SELECT count(*) FROM events WHERE run_id = :id", id=str(run.id))
    hold_sql = {
        "event": "SELECT 1 FROM events WHERE id = (SELECT min(id) FROM events WHERE run_id = :id)"
        " FOR UPDATE",
        "step": "SELECT 1 FROM step_runs WHERE run_id = :id AND step_id = 'flaky' FOR UPDATE",
    }[held]
    committed: list[str] = []  # who returned (committed) first

    def replay() -> list[str]:
        sent = client.replay(run.id, {"times": 0})
        committed.append("replay")
        return sent

    def purge() -> Any:
        result = purge_now()
        committed.append("purge")
        return result

    with get_engine().connect() as hold, ThreadPoolExecutor(2) as pool:
        hold.execute(text(hold_sql), {"id": str(run.id)})
        first, second = (purge, replay) if held == "event" else (replay, purge)
        futures = {first: pool.submit(first)}
        wait_until(lambda: waiting_for_locks() == 1, 30, f"{first.__name__} to wait for {held}")
        futures[second] = pool.submit(second)
        wait_until(lambda: committed or waiting_for_locks() == 2, 30, "the second to end or wait")
        # Who had committed while the hold was still on. Not the order the two return in
        # afterwards: purge_now goes on to its other batches after the events' one has
        # committed, so a replay that waited for that batch may still return first.
        done_while_held = list(committed)
        hold.commit()
        assert futures[replay].result(timeout=30) == ["flaky", "last"]
        purged = futures[purge].result(timeout=30)
    assert purged is not None
    kept = db.scalar(
        "SELECT count(*) FROM events WHERE run_id = :id AND created_at < now() - interval '1 day'",
        id=str(run.id),
    )
    assert kept in (0, old_events)
    if kept == 0:
        assert "replay" not in done_while_held, (
            "the purge deleted the history of a run reopened meanwhile"
        )
    assert client.run(run.id).wait(timeout=30) == {"last": {"text": "done"}}
