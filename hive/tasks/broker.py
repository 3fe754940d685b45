"""The broker connection of Hive's Celery app: kombu's, made safe to close after Redis is lost.

When a worker loses Redis, Celery's consumer first ``collect()``\\s its connection, then
``close()``\\s it. kombu 5.7's ``collect()`` tries to close each channel; with Redis gone, the
first failure (deleting the control channel's fanout queue) aborts the rest, the default
channel stays open, and the transport is detached from the connection all the same. The
``close()`` that follows closes that channel again: with an unacknowledged message in hand
(any step finished but not yet acked, ``task_acks_late``), kombu tries to put it back and
asks the detached transport for Redis's address, an ``AttributeError`` that none of the
error handlers on the way expects. Celery calls it an unrecoverable error and the worker
exits, so a Redis restart took the farm's workers down with it (seen in
``tests/faults/test_redis_loss.py``, one run in a few).

A channel whose transport is detached cannot reach Redis whatever happens, so closing it
again is skipped, as kombu already skips such errors when it closes the transport's own
connection. Its unacknowledged message is not put back, exactly as when putting it back
fails because Redis is down: its step is claimed, running with a lease, or done, and
recovery takes it from there.
"""

from __future__ import annotations

from typing import Any

from celery.app.amqp import AMQP
from kombu import Connection


class BrokerConnection(Connection):
    """kombu's connection, which does not close again a channel whose transport is gone."""

    def maybe_close_channel(self, channel: Any) -> None:
        transport = getattr(channel, "connection", None)
        if transport is not None and getattr(transport, "client", None) is None:
            return
        super().maybe_close_channel(channel)


class HiveAMQP(AMQP):
    """Celery's messaging layer for Hive's app, with :class:`BrokerConnection`."""

    Connection = BrokerConnection
    BrokerConnection = BrokerConnection
