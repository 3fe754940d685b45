"""How many messages wait in the broker's queues: what recovery weighs before re-sending."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis.exceptions
from kombu.exceptions import ChannelError

from hive.tasks.app import app


def queued_messages(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue, every priority counted; messages a worker has taken
    (reserved or running) are not. A queue Redis holds no list for counts 0."""
    depths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        # Typed as kombu's StdChannel, which lacks the virtual transport's queue_declare.
        channel: Any = conn.default_channel
        for queue in queues:
            # Passive: counts without declaring (kombu sums the queue's priority lists).
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:
                depths[queue] = 0
            except redis.exceptions.ResponseError:
                # WRONGTYPE: the queue's key holds something else, so no message; sending
                # to it fails, and the dispatcher records that.
                depths[queue] = 0
    return depths
