"""A step's timeout where the pool cannot enforce it: ``--pool threads`` (and ``solo``).

Under ``prefork`` Celery enforces each step message's time limits with signals: the soft
limit raises inside the agent, the hard limit kills the pool process. Threads have neither
signal nor kill, and Celery ignores time limits there. So under those pools the agent runs
on an agent thread (kept for later steps once it returns) while the pool's thread waits for
it until the step's deadline:

- on time, its output or error comes back as if it had run in the pool's thread;
- past the deadline, the waiting thread raises :class:`SoftTimeLimitExceeded`, so the
  attempt is recorded as a ``timeout`` (and retried per the step's policy) exactly as under
  prefork, and the pool's slot is free for the next message. ``ctx.is_cancelled()`` answers
  True from then on; an agent that ignores it is *abandoned*: its thread runs on unseen
  and whatever it returns is dropped (nothing of it is recorded, and a finish would be a
  refused compare-and-set anyway);
- should as many abandoned threads be alive at once as the pool has slots (at least
  :data:`MIN_ABANDONED_TO_STOP`), the worker shuts down warm (exit status 70) so that its
  supervisor starts a clean one: the threads' answer to prefork's hard time limit, which
  kills the process. Memory stays bounded by twice the pool's threads.

The agent runs in a copy of the waiting thread's context, so its log records carry the
step's ids.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from billiard.exceptions import SoftTimeLimitExceeded

from hive import metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Celery's pools that enforce a message's time limits (``celery.concurrency`` names).
_LIMITING_POOLS = frozenset({"prefork", "processes"})
# How often the waiting thread asks whether the run was cancelled; a cooperative agent
# notices sooner through ctx.is_cancelled().
_CANCEL_POLL_S = 5.0
# The exit status of a worker that stopped because too many agents ignored their timeout
# (EX_SOFTWARE: a supervisor restarts it).
EXIT_ABANDONED = os.EX_SOFTWARE
# A small pool tolerates a few abandoned threads before it stops: one stuck agent must not
# restart a worker of one thread at every timeout.
MIN_ABANDONED_TO_STOP = 8

_enforced_by_pool = True
_slots = 0
_abandoned: set[Outcome[Any]] = set()
_lock = threading.Lock()


class RunCancelled(Exception):
    """The run was cancelled while its agent ran; the agent was abandoned."""


def configure_for_pool(pool: Any, concurrency: int | None) -> None:
    """In the worker's main process (``worker_init``): whether ``pool`` (a name or class)
    enforces time limits itself, and how many slots it has."""
    global _enforced_by_pool, _slots
    name = pool if isinstance(pool, str) else str(getattr(pool, "__module__", pool))
    name = name.rsplit(".", 1)[-1]
    _enforced_by_pool = name in _LIMITING_POOLS
    _slots = concurrency or 0


def enforced_by_pool() -> bool:
    """True where Celery's time limits stop the agent (prefork), False where
    :func:`call_within` must."""
    return _enforced_by_pool


def abandoned_alive() -> int:
    """Abandoned agent threads still running."""
    with _lock:
        return len(_abandoned)


def call_within(
    fn: Callable[[], T],
    deadline: float,
    *,
    expired: threading.Event,
    cancelled: Callable[[], bool],
    agent: str,
    on_abandon: Callable[[Callable[[Callable[[], None]], None]], None] | None = None,
) -> T:
    """``fn()`` on an agent thread, waited for until ``deadline`` (``time.monotonic()``).

    ``on_abandon``, if the thread is abandoned, is given a function that registers a
    callback for the abandoned agent's end (the step's limits are held until then).

    Raises:
        SoftTimeLimitExceeded: the deadline passed first; ``expired`` is set and the thread
            abandoned.
        RunCancelled: ``cancelled()`` turned True first; the thread is abandoned likewise.
        Exception: whatever ``fn`` raised.
    """
    future = _threads.submit(fn)
    while True:
        try:
            return future.result(min(_CANCEL_POLL_S, max(deadline - time.monotonic(), 0.0)))
        except TimeoutError:
            pass
        if time.monotonic() >= deadline:
            expired.set()
            _abandon(future, agent, "ran past its timeout", on_abandon)
            raise SoftTimeLimitExceeded()
        if cancelled():
            expired.set()
            _abandon(future, agent, "belongs to a cancelled run", on_abandon)
            raise RunCancelled("the run was cancelled")


class Outcome(Generic[T]):
    """What one agent call returned or raised, handed from its agent thread to the step's
    thread through one lock, held until then: the agent thread releases it, the step's
    thread wakes once. (A ``concurrent.futures.Future`` wakes it under its condition's lock,
    which the woken thread must then wait for: under a pool of 200 threads on a crowded
    machine that hand-back held the GIL for 16 % of the pool's and agents' samples;
    bench/RESULTS.md.)"""

    __slots__ = ("_callbacks", "_done", "_error", "_guard", "_ready", "_value")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self._guard = threading.Lock()  # completion against add_done_callback
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Outcome[T]], None]] = []

    def done(self) -> bool:
        return self._done

    def result(self, timeout: float) -> T:
        """The value, or the agent's exception raised here.

        Raises:
            TimeoutError: not done within ``timeout`` seconds.
        """
        if not self._ready.acquire(timeout=timeout):
            raise TimeoutError()
        self._ready.release()  # done for good: any later call returns at once
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # T, set by set_result

    def set_result(self, value: T) -> None:
        self._finish(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._finish(None, error)

    def add_done_callback(self, fn: Callable[[Outcome[T]], None]) -> None:
        """``fn(self)`` once done: now, if it is."""
        with self._guard:
            if not self._done:
                self._callbacks.append(fn)
                return
        fn(self)

    def _finish(self, value: T | None, error: BaseException | None) -> None:
        self._value, self._error = value, error
        with self._guard:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        self._ready.release()
        for callback in callbacks:
            callback(self)


class _AgentThreads:
    """Daemon threads that run agents, kept for the next step once one returns: an agent's
    thread-local clients (one ``httpx.Client`` per thread, say) are made once per thread,
    not once per step. A thread busy with an abandoned agent is simply not idle; a daemon,
    it never holds up the process's exit."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Outcome[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._idle = 0
        self._started = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> Outcome[T]:
        future: Outcome[T] = Outcome()
        context = contextvars.copy_context()  # the step's log ids go along
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._started += 1
                name = f"hive-agent-{self._started}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
        self._work.put((future, lambda: context.run(fn)))
        return future

    def _serve(self) -> None:
        while True:
            future, fn = self._work.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting thread, which raises it
                future.set_exception(exc)
            del future, fn  # an idle thread holds no step's result
            with self._lock:
                self._idle += 1


_threads = _AgentThreads()


def _abandon(
    future: Outcome[Any],
    agent: str,
    why: str,
    on_abandon: Callable[[Callable[[Callable[[], None]], None]], None] | None,
) -> None:
    if on_abandon is not None:
        on_abandon(lambda callback: future.add_done_callback(lambda _: callback()))
    gauge = metrics.ABANDONED_AGENTS.labels(agent)
    with _lock:
        if not future.done():  # finished just now: nothing left running
            _abandoned.add(future)
            gauge.inc()
        alive = len(_abandoned)

    def forget(done: Outcome[Any]) -> None:
        with _lock:
            if done in _abandoned:
                _abandoned.discard(done)
                gauge.dec()

    future.add_done_callback(forget)
    logger.warning("agent %s; its thread is abandoned (%d abandoned still run)", why, alive)
    if _slots and alive >= max(_slots, MIN_ABANDONED_TO_STOP):
        _stop_worker(alive)


def _stop_worker(alive: int) -> None:
    """Ask the worker for a warm shutdown: its consumer stops, running steps finish."""
    from celery.worker import state

    if state.should_stop in (None, False):
        logger.error(
            "%d abandoned agent threads are still running (the pool has %d slots): "
            "stopping this worker so that a clean one takes its place",
            alive,
            _slots,
        )
        state.should_stop = EXIT_ABANDONED  # type: ignore[assignment]  # Celery types it None
