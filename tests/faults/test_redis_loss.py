"""Redis restarts empty while runs are queued and running: every run still finishes."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import kombu
import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from hive import Client
from hive.tasks.app import app
from hive.tasks.broker import BrokerConnection
from tests.faults.conftest import FAST
from tests.support import db, producer
from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer

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


def _consumer_connection_losing_redis(connection: Connection, server: RedisServer) -> Connection:
    """``connection`` as a worker's consumer holds it when Redis goes: a message taken and
    not yet acknowledged on the default channel, which waits on BRPOP, and the control
    channel's fanout queue (auto-deleted on close) beside it. Then Redis is killed."""
    connection.connect()
    channel = connection.default_channel
    steps = Queue("steps", Exchange("steps"), "steps")
    Producer(channel).publish({"step": 1}, exchange=steps.exchange, routing_key="steps",
                              declare=[steps])  # fmt: skip
    taken: list[Any] = []
    Consumer(channel, queues=[steps], callbacks=[lambda _, m: taken.append(m)]).consume()
    connection.drain_events(timeout=5)
    assert len(taken) == 1 and len(channel.qos._delivered) == 1
    control = Queue("control", Exchange("control", type="fanout"), auto_delete=True)
    Consumer(connection.channel(), queues=[control], no_ack=True).consume()
    channel._brpop_start()
    # The message is recovery's once the connection is gone: kombu must not try, at this
    # process's exit, to put it back into a Redis that is no more.
    channel.qos._on_collect.cancel()
    server.stop()
    return connection


def test_the_worker_connection_closes_after_redis_is_lost_with_a_message_in_hand(
    hive_env: dict[str, str], own_redis: RedisServer
) -> None:
    """Celery's consumer, losing Redis, collects its connection, then closes it. kombu's
    own connection raised AttributeError on that close (a channel left open by the collect,
    its transport gone), which Celery calls unrecoverable: the worker exited, and with it
    every run in flight stalled (this file's test above, one run in a few). The app's
    connection closes cleanly; its messages are then recovery's to send again. (Fails
    without hive/tasks/broker.py's override: the same AttributeError.)"""
    plain = _consumer_connection_losing_redis(kombu.Connection(own_redis.url), own_redis)
    plain.collect(socket_timeout=2)
    # The defect, in kombu 5.7 (AttributeError): once a release closes cleanly, broker.py
    # can go. Not asserted, so that such a release does not fail the suite.
    with contextlib.suppress(AttributeError):
        plain.close()

    own_redis.start()
    hives = app.connection_for_read(own_redis.url)
    assert isinstance(hives, BrokerConnection)
    _consumer_connection_losing_redis(hives, own_redis)
    hives.collect(socket_timeout=2)
    hives.close()
