"""The recovery sweep re-sends a step only when its message can be lost, spaced and counted.

A queue nobody consumes is the worst case for an age-based re-send: every step is old, and
every message is still there. The sweep must not pile up copies behind it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from hive import keys
from hive.tasks.backlog import queued_messages
from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(240)

RUNS = 4
# Every step waiting longer than two seconds is a candidate on every one-second sweep.
RESEND = {**FAST, "HIVE_REDISPATCH_AFTER_S": "2"}


def queued(queue: str = keys.DEFAULT_QUEUE) -> int:
    return queued_messages([queue])[queue]


def lose(n: int, queue: str = keys.DEFAULT_QUEUE) -> None:
    """Take ``n`` messages off the queue for good, as a broker that drops them would."""
    from hive.tasks.app import app

    with app.connection_for_write() as conn:
        for _ in range(n):
            assert conn.default_channel.basic_get(queue, no_ack=True) is not None


def sweeps_since(t: datetime) -> int:
    return int(
        db.scalar(
            "SELECT count(*) FROM events WHERE kind = 'maintenance'"
            " AND detail->>'task' = 'recover' AND created_at > :t",
            t=t,
        )
    )


def wait_for_sweeps(n: int, since: datetime) -> None:
    wait_until(lambda: sweeps_since(since) >= n, 120, f"{n} recovery sweeps")
    assert sweeps_since(since) >= n, f"only {sweeps_since(since)} sweeps"


def resends() -> int:
    return int(db.scalar("SELECT coalesce(sum(resends), 0) FROM step_runs"))


def test_a_queue_nobody_consumes_holds_one_copy_per_step_and_the_runs_finish_once(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    success_audit: None,
) -> None:
    # Recovery runs, but nothing consumes the steps' queue.
    start_worker("--queues", keys.MAINTENANCE_QUEUE, extra_env=RESEND, name="maint")
    start_beat(extra_env=RESEND)
    wait_for_sweeps(
        1, db.scalar("SELECT now() - interval '1 hour'")
    )  # the first, broker-reset sweep
    since = db.scalar("SELECT now()")
    run_ids = producer.submit(
        {**os.environ, **hive_env, **RESEND},
        "fault-chain3",
        [{"text": f"r{i}"} for i in range(RUNS)],
    )

    # Each run's message is its first step's, carrying the chain; 20 sweeps see each step
    # waiting for ten times the threshold.
    wait_for_sweeps(20, since)
    before_loss = queued()
    print(f"\nafter {sweeps_since(since)} sweeps: {before_loss} messages for {RUNS} waiting steps")
    assert before_loss == RUNS, "every message is still in the queue: nothing to re-send"
    assert resends() == 0

    # Two messages vanish (a broker that lost them without losing its marker key).
    lost_at = db.scalar("SELECT now()")
    lose(2)
    wait_until(lambda: queued() == RUNS, 60, "the lost messages to be sent again")
    wait_for_sweeps(10, lost_at)
    after_loss = queued()
    print(f"two lost, then {sweeps_since(lost_at)} sweeps: {after_loss} messages, "
          f"{resends()} re-sends")  # fmt: skip
    assert after_loss == RUNS
    assert resends() == 2, "exactly the lost messages are sent again, once each"
    details = db.rows("SELECT detail FROM events WHERE kind = 'redispatch' AND created_at > :t",
                      t=lost_at)  # fmt: skip
    assert sum(len(d.detail["resent"]) for d in details) == 2
    # The recovery sweep's reports (beat's health sweep records its own too).
    reports = db.rows(
        "SELECT detail FROM events WHERE kind = 'maintenance' AND detail->>'task' = 'recover'"
        " AND created_at > :t",
        t=lost_at,
    )
    assert sum(r.detail["result"]["resent_steps"] for r in reports) == 2

    start_worker("--concurrency", "2", extra_env=RESEND)
    wait_until(
        lambda: db.scalar("SELECT count(*) FROM runs WHERE status = 'succeeded'") == RUNS,
        60,
        "every run to finish",
    )
    assert db.scalar("SELECT count(*) FROM runs WHERE status = 'succeeded'") == RUNS
    assert {str(r) for r in run_ids} == {str(r.id) for r in db.rows("SELECT id FROM runs")}
    assert db.duplicate_successes() == 0


@pytest.fixture
def resend_after_2s(hive_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from hive.settings import get_settings

    monkeypatch.setenv("HIVE_REDISPATCH_AFTER_S", "2")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_nth_resend_of_a_step_waits_the_threshold_doubled_n_times_up_to_a_cap(
    resend_after_2s: None, clean_state: None
) -> None:
    from sqlalchemy import text

    from hive import Client
    from hive.beat.tasks import recover_now
    from hive.db.engine import get_engine
    from hive.tasks.app import app

    recover_now()  # the first sweep on an empty broker sends everything: get it done
    run = Client().submit("fault-chain3", {"text": "lost again and again"})

    def sweep_with_message_lost_and_marked(seconds_ago: float, resends: int | None = None) -> int:
        """Lose the step's message, date its mark; the steps this sweep sent again."""
        app.control.purge()
        with get_engine().begin() as conn:
            conn.execute(
                text(
                    "UPDATE step_runs SET enqueued_at = now() - make_interval(secs => :s),"
                    " resends = coalesce(:n, resends) WHERE run_id = :id AND step_id = 'a'"
                ),
                {"s": seconds_ago, "n": resends, "id": run.id},
            )
        report = recover_now()
        assert report is not None
        return int(report["resent_steps"])

    # Threshold 2 s: the first re-send after 2 s, the second after 4, the third after 8.
    assert sweep_with_message_lost_and_marked(1.5) == 0
    assert sweep_with_message_lost_and_marked(2.5) == 1
    assert sweep_with_message_lost_and_marked(3.5) == 0
    assert sweep_with_message_lost_and_marked(4.5) == 1
    assert sweep_with_message_lost_and_marked(7.5) == 0
    assert sweep_with_message_lost_and_marked(8.5) == 1
    assert db.scalar("SELECT resends FROM step_runs WHERE run_id = :id AND step_id = 'a'",
                     id=run.id) == 3  # fmt: skip
    # Capped at 16 times the threshold, however many re-sends came before.
    assert sweep_with_message_lost_and_marked(31.5, resends=20) == 0
    assert sweep_with_message_lost_and_marked(32.5, resends=20) == 1

    # Overdue, but its message is in the queue: left alone, reported as held back.
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE step_runs SET enqueued_at = now() - interval '1 hour'"
                          " WHERE run_id = :id AND step_id = 'a'"), {"id": run.id})  # fmt: skip
    report = recover_now()
    assert report is not None
    assert (report["resent_steps"], report["held_back_steps"]) == (0, 1)
    events = db.rows("SELECT detail FROM events WHERE kind = 'redispatch' AND run_id = :id",
                     id=run.id)  # fmt: skip
    assert [e.detail["resent"] for e in events] == [{"a": n} for n in (1, 2, 3, 21)]
