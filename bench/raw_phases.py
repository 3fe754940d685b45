"""Raw Celery's side: the same shapes as plain tasks, on Hive's app, broker, queue and worker.

Messages go out the way Hive sends a step (``app.signature(...).apply_async()`` to the
default queue at the normal priority); ``bench.stamp`` records when each task started.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery import chain
from celery.canvas import Signature

from bench.keys import NOOP_TASK, STAMP_TASK, stamp_key
from bench.setup import CHAIN_LENGTH
from hive import keys as hive_keys
from hive.keys import PRIORITIES
from hive.tasks.app import app

_PRIORITY = PRIORITIES["normal"]
_UNACKED = "unacked"


def _queue_lists() -> list[str]:
    # kombu's Redis transport keeps one list per priority step: name, name+"\x06\x16"+step.
    steps = app.conf.broker_transport_options["priority_steps"]
    return [hive_keys.DEFAULT_QUEUE + (f"\x06\x16{p}" if p else "") for p in steps]


@dataclass(frozen=True)
class RawTimings:
    start: list[float]
    """Per task (or chain): send call start to the (last) stamp."""
    wall_s: float

    @classmethod
    def merged(cls, parts: list[RawTimings]) -> RawTimings:
        return cls(start=[x for p in parts for x in p.start], wall_s=sum(p.wall_s for p in parts))


class RawBench:
    def __init__(self, broker: redis.Redis) -> None:
        self.redis = broker

    def _signature(self, task: str, *args: object) -> Signature:
        return app.signature(
            task, args=args, immutable=True, queue=hive_keys.DEFAULT_QUEUE, priority=_PRIORITY
        )

    def burst(self, count: int) -> RawTimings:
        """``count`` stamp tasks back to back; done when the stamp list holds ``count``."""
        key = stamp_key("burst")
        sent = []
        for tag in range(count):
            sent.append(time.time())
            self._signature(STAMP_TASK, key, tag).apply_async()
        stamps = self._wait_len(key, count, timeout_s=max(120.0, count * 0.2))
        return RawTimings(
            start=[stamps[tag] - sent[tag] for tag in range(count)],
            wall_s=max(stamps.values()) - sent[0],
        )

    def drain(self, count: int, pause: Callable[[], None], resume: Callable[[], None]) -> float:
        """``count`` stamp tasks queued while the worker is paused; seconds from the first
        stamp to the last."""
        key = stamp_key("drain")
        pause()
        for tag in range(count):
            self._signature(STAMP_TASK, key, tag).apply_async()
        resume()
        stamps = self._wait_len(key, count, timeout_s=max(120.0, count * 0.2))
        return max(stamps.values()) - min(stamps.values())

    def noop_burst(self, count: int, poll_s: float = 0.005) -> float:
        """``count`` no-op tasks; done when the queue is empty and nothing is unacked.
        Returns the wall time in seconds (resolution ``poll_s``)."""
        first = time.time()
        for _ in range(count):
            self._signature(NOOP_TASK).apply_async()
        lists = _queue_lists()
        deadline = time.monotonic() + max(120.0, count * 0.2)
        while time.monotonic() < deadline:
            pipe = self.redis.pipeline(transaction=False)
            for name in lists:
                pipe.llen(name)
            pipe.hlen(_UNACKED)
            if not any(pipe.execute()):
                return time.time() - first
            time.sleep(poll_s)
        raise TimeoutError(f"{count} noop tasks not drained")

    def one_at_a_time(self, count: int) -> RawTimings:
        """``count`` stamp tasks, each sent after the one before has started (an idle farm)."""
        key = stamp_key("idle")
        latencies = []
        first = time.time()
        for tag in range(count):
            t0 = time.time()
            self._signature(STAMP_TASK, key, tag).apply_async()
            _, stamped = self._pop(key)
            latencies.append(stamped - t0)
        return RawTimings(start=latencies, wall_s=time.time() - first)

    def chains(self, count: int) -> RawTimings:
        """``count`` chains of CHAIN_LENGTH stamp tasks, one at a time: send to last stamp."""
        key = stamp_key("chain")
        latencies = []
        first = time.time()
        for _ in range(count):
            t0 = time.time()
            chain(self._signature(STAMP_TASK, key, i) for i in range(CHAIN_LENGTH)).apply_async()
            last = max(self._pop(key)[1] for _ in range(CHAIN_LENGTH))
            latencies.append(last - t0)
        return RawTimings(start=latencies, wall_s=time.time() - first)

    def chain_burst(self, count: int) -> RawTimings:
        """``count`` chains sent back to back; done when every stamp is in."""
        key = stamp_key("chain-burst")
        sent = []
        for c in range(count):
            sent.append(time.time())
            sigs = (
                self._signature(STAMP_TASK, key, c * CHAIN_LENGTH + i) for i in range(CHAIN_LENGTH)
            )
            chain(sigs).apply_async()
        stamps = self._wait_len(key, count * CHAIN_LENGTH, timeout_s=max(120.0, count * 2.0))
        return RawTimings(start=[], wall_s=max(stamps.values()) - sent[0])

    def _pop(self, key: str, timeout_s: float = 60.0) -> tuple[int, float]:
        item = self.redis.brpop([key], timeout=timeout_s)
        if item is None:
            raise TimeoutError(f"no stamp on {key} after {timeout_s}s")
        tag, stamped = json.loads(item[1])
        return int(tag), float(stamped)

    def _wait_len(self, key: str, count: int, timeout_s: float) -> dict[int, float]:
        deadline = time.monotonic() + timeout_s
        while self.redis.llen(key) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.redis.llen(key)}/{count} stamps after {timeout_s}s")
            time.sleep(0.02)
        items = (json.loads(raw) for raw in self.redis.lrange(key, 0, -1))
        return {int(tag): float(stamped) for tag, stamped in items}
