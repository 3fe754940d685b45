"""Atomic, idempotent submit."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from tests.support import db, producer

pytestmark = pytest.mark.timeout(120)


def test_concurrent_submits_with_one_idempotency_key_make_one_run(hive_env, clean_state) -> None:
    env = {**os.environ, **hive_env}

    def submit_from_a_process(_: int) -> list[str]:
        return producer.submit(
            env, "fault-chain3", [{"text": "once"}] * 3, idempotency_key="order-42", tenant="acme"
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = {run_id for batch in pool.map(submit_from_a_process, range(6)) for run_id in batch}
    assert len(ids) == 1
    assert db.scalar("SELECT count(*) FROM runs") == 1
    assert db.scalar("SELECT count(*) FROM step_runs") == 3

    other_tenant = Client().submit(
        "fault-chain3", {"text": "once"}, idempotency_key="order-42", tenant="globex"
    )
    assert str(other_tenant.id) not in ids
    assert db.scalar("SELECT count(*) FROM runs") == 2


def test_a_run_whose_messages_were_never_sent_is_dispatched_by_recovery(
    hive_env, start_worker
) -> None:
    from sqlalchemy import text

    from hive.beat.tasks import recover_now
    from hive.db.engine import get_engine

    run = Client().submit("fault-chain3", {"text": "orphan"})
    # Simulate a producer that died between commit and publish: empty the queue and
    # leave the rows marked as never sent.
    from hive.tasks.app import app

    app.control.purge()
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE step_runs SET enqueued_at = NULL"))
    start_worker("--concurrency", "1")
    report = recover_now()
    assert report is not None and report["redispatched_steps"] >= 1
    assert run.wait(timeout=30) == {"c": {"text": "orphan"}}


def test_after_postgres_restarts_recovery_sends_again_the_steps_marked_sent(
    hive_env, start_worker, redis_db
) -> None:
    """A PostgreSQL crash can lose claims committed without waiting for their flush: their
    steps read "pending, sent" while their messages are gone. Recovery notices the new
    server start time and sends them again."""
    from hive import keys
    from hive.beat.tasks import recover_now
    from hive.settings import get_settings
    from hive.tasks.app import app

    run = Client().submit("fault-chain3", {"text": "after a crash"})
    recover_now()  # the first sweep: notes the server's start time
    app.control.purge()  # the messages were consumed by claims that the crash undid
    broker = redis_db[0]
    assert db.scalar("SELECT count(*) FROM step_runs WHERE enqueued_at IS NOT NULL") == 3
    broker.set(keys.database_epoch(get_settings().broker.key_prefix), "2000-01-01 00:00:00+00")

    start_worker("--concurrency", "1")
    report = recover_now()
    assert report is not None and report["database_restarted"] is True
    assert report["redispatched_steps"] >= 1
    assert run.wait(timeout=30) == {"c": {"text": "after a crash"}}
    assert db.scalar("SELECT count(*) FROM events WHERE kind = 'database_restart'") == 1
    again = recover_now()
    assert again is not None and again["database_restarted"] is False


def test_steps_marked_sent_but_never_published_are_sent_once_their_publish_is_overdue(
    hive_env, start_worker
) -> None:
    """A dispatcher that died between its commit and its publish leaves steps marked sent
    with no message. The mark's publish deadline passes unconfirmed, and recovery sends
    them, long before the age-based re-send would."""
    from hive.beat.tasks import recover_now
    from hive.tasks.app import app

    recover_now()  # the first sweep on an empty broker re-sends everything; get it done
    run = Client().submit("fault-chain3", {"text": "never published"})
    marks = db.rows(
        "SELECT enqueued_at IS NOT NULL AS sent, publish_by FROM step_runs WHERE run_id = :id",
        id=run.id,
    )
    assert [(m.sent, m.publish_by) for m in marks] == [(True, None)] * 3  # confirmed
    app.control.purge()
    report = recover_now()
    assert report is not None and report["redispatched_steps"] == 0  # confirmed: left alone

    # The state a dispatcher leaves when it dies before publishing, once the grace is over.
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE step_runs SET publish_by = now() - interval '1 second' WHERE run_id = :id"
            ),
            {"id": run.id},
        )
    start_worker("--concurrency", "1")
    report = recover_now()
    assert report is not None and report["redispatched_steps"] >= 1
    assert run.wait(timeout=30) == {"c": {"text": "never published"}}


@pytest.fixture
def database_through(
    hive_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], None]]:
    """Point this process's engines at another database URL (the proxy's) for one test."""
    from hive.db.engine import dispose_engine
    from hive.settings import get_settings

    def use(url: str) -> None:
        monkeypatch.setenv("HIVE_DATABASE_URL", url)
        get_settings.cache_clear()
        dispose_engine()

    yield use
    monkeypatch.setenv("HIVE_DATABASE_URL", hive_env["HIVE_DATABASE_URL"])
    get_settings.cache_clear()
    dispose_engine()


def test_a_submit_whose_commit_answer_is_lost_stores_one_run_and_sends_it(
    clean_state, pg_proxy, database_through, start_worker
) -> None:
    """The insert commits, then the connection drops before its answer arrives: the
    submit tries once more with the same idempotency key, finds its own run, sends it,
    and reports success. A caller retrying on a reported failure made a second run."""
    proxy, proxied_url = pg_proxy
    database_through(proxied_url)
    proxy.lose_reply_to(b"hive_insert_run")

    run = Client().submit("fault-chain3", {"text": "once"})

    assert proxy.replies_lost == 1, "the commit's answer must have been lost"
    assert db.scalar("SELECT count(*) FROM runs") == 1
    assert db.scalar("SELECT id FROM runs") == run.id
    start_worker("--concurrency", "1")
    assert run.wait(timeout=30) == {"c": {"text": "once"}}
    assert db.scalar("SELECT count(*) FROM runs") == 1


def test_a_submit_without_a_key_stores_none(hive_env, clean_state) -> None:
    """The run id tells a retried insert from a new run (see the test above): no key is
    made up, so the run has no entry in the idempotency index."""
    run = Client().submit("fault-chain3", {"text": "keyed"})

    key = db.scalar("SELECT idempotency_key FROM runs WHERE id = :id", id=run.id)
    assert key is None
