"""A worker's presence in the registry: it registers when ready, heartbeats, and marks
itself offline on a warm shutdown.

All of it runs in the worker's main process (Celery's ``worker_ready`` and
``worker_shutdown`` signals). The heartbeat is a daemon thread of its own, not Celery's
timer: the step path never waits for it, and it keeps beating while a ``solo`` or
``threads`` pool runs steps in the main process. A frozen or killed worker stops beating,
and beat's sweep (:mod:`hive.beat.workers`) marks it lost and takes its steps back.

One live process per node name. The registry knows a worker by its name (``step_runs``
holds it) and its process by when it became ready, so two live processes of one name
would take each other's running steps back. At ``worker_ready``, when the name's row is
still ``online`` (its process did not stop cleanly, or still runs), the worker pings its
own name first: it cannot answer yet itself (its event loop starts after the signal), so
a reply comes from another live process, and this one refuses to start, without touching
the row, and exits with :data:`EXIT_DUPLICATE_NAME`. No reply: the earlier process is dead
(killed and restarted by a supervisor) and the row is taken over at once. A first start,
or one after a clean stop, pings nobody.

Two that slip past that check (started at the same instant, or one frozen while the
other started) are settled by one rule: the last to register keeps the name. A heartbeat
that finds the row held by another pid whose heartbeat is fresh (younger than
``HIVE_WORKER_LOST_AFTER_S``) does not take it back: it records a ``worker_duplicate``
event, logs one error and stops its worker warm, with the same status. Only a row that is
gone, or whose holder went silent, is registered again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import celery
from celery.exceptions import WorkerShutdown

from hive.db import events as event_log
from hive.db import workers as registry
from hive.db.retrying import Connection, in_transaction
from hive.settings import get_settings
from hive.statuses import WorkerState

logger = logging.getLogger(__name__)

# Registering waits at most this long for PostgreSQL before the worker starts consuming;
# should it not answer, the first heartbeat that gets through registers instead.
_REGISTER_RETRY_S = 5.0

# How long the sweep waits for a silent worker to answer a ping.
_PING_TIMEOUT_S = 1.0

# The exit status of a worker that leaves its node name to another live process: two
# workers were given one name (EX_CONFIG, a configuration error).
EXIT_DUPLICATE_NAME = os.EX_CONFIG

_current: Presence | None = None


def worker_info(consumer: Any) -> registry.WorkerInfo:
    """What the worker whose consumer is ``consumer`` registers: its node name, queues,
    concurrency and pool, and the versions it runs."""
    controller = consumer.controller
    queues = sorted(q.name for q in consumer.task_consumer.queues)
    return registry.WorkerInfo(
        name=str(consumer.hostname),
        pid=os.getpid(),
        queues=queues,
        concurrency=int(controller.concurrency),
        pool=_pool_name(controller.pool_cls),
        hive_version=_hive_version(),
        celery_version=celery.__version__,
    )


def _pool_name(pool_cls: Any) -> str:
    """``prefork``, ``threads``, ``solo``... as ``--pool`` names it (Celery's pools are
    modules of ``celery.concurrency``, the thread pool's named ``thread``)."""
    module = str(getattr(pool_cls, "__module__", pool_cls))
    name = module.removeprefix("celery.concurrency.")
    return {"thread": "threads"}.get(name, name)


def _hive_version() -> str:
    try:
        return version("hive")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class Presence:
    """One worker process's registration and its heartbeat thread."""

    def __init__(self, info: registry.WorkerInfo, interval_s: float, lost_after_s: float) -> None:
        self.info = info
        # Before this process claims anything: the registry's started_at, however late the
        # registration lands, and what tells its steps from an earlier run's of its name.
        self._ready_at = time.monotonic()
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hive-heartbeat", daemon=True)
        self._failing = False
        # The live process that took this one's name (see the module's docstring).
        self._displaced_by: int | None = None
        self._lost_after_s = lost_after_s

    def start(self) -> None:
        try:
            in_transaction(self._register, retry_s=_REGISTER_RETRY_S)
        except Exception:
            logger.warning("could not register worker %s; will on the next heartbeat",
                           self.info.name, exc_info=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        """Stop beating, then mark the worker offline (after the last beat, so no beat can
        bring it back online)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval_s + 10)
        try:
            in_transaction(self._offline, retry_s=_REGISTER_RETRY_S)
        except Exception:
            logger.warning("could not mark worker %s offline", self.info.name, exc_info=True)

    def _beat(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                # No retry: the next beat is the retry, and the thread must not fall behind.
                in_transaction(self._heartbeat, retry_s=0)
            except Exception as exc:
                if not self._failing:
                    logger.warning("heartbeat of %s failed: %s", self.info.name, exc)
                self._failing = True
            else:
                if self._failing:
                    logger.info("heartbeat of %s recorded again", self.info.name)
                self._failing = False
                if self._displaced_by is not None:
                    self._give_up(self._displaced_by)
                    return

    def _register(self, conn: Connection) -> None:
        registry.register(conn, self.info, running_s=time.monotonic() - self._ready_at)
        event_log.record(conn, "worker_online", self._detail())
        logger.info("worker %s registered (pid %d)", self.info.name, self.info.pid)

    def _heartbeat(self, conn: Connection) -> None:
        before = registry.heartbeat(conn, self.info.name, self.info.pid)
        if before is None:  # the row is gone, or another process of this name took it
            held = registry.holder(conn, self.info.name)
            if held is not None and self._alive(held):
                event_log.record(conn, "worker_duplicate",
                                 {"worker": self.info.name, "pid": self.info.pid,
                                  "holder_pid": held.pid})  # fmt: skip
                self._displaced_by = held.pid
            else:
                self._register(conn)
        elif before is WorkerState.LOST:
            event_log.record(conn, "worker_back", {"worker": self.info.name})
            logger.warning("worker %s was marked lost and is back online; steps it was "
                           "running were taken back", self.info.name)  # fmt: skip

    def _alive(self, held: registry.Holder) -> bool:
        """Whether the other process holding this name's row is alive, as the sweep would
        judge it."""
        return held.state is WorkerState.ONLINE and held.heartbeat_age_s < self._lost_after_s

    def _give_up(self, holder_pid: int) -> None:
        """Leave the name to the live process that registered it after this one: stop
        beating and stop the worker warm (its running steps finish)."""
        from celery.worker import state

        logger.error("worker %s (pid %d): another live process, pid %d, registered under "
                     "this node name; stopping this one. Give each worker its own --hostname",
                     self.info.name, self.info.pid, holder_pid)  # fmt: skip
        self._stopping.set()
        if state.should_stop in (None, False):
            state.should_stop = EXIT_DUPLICATE_NAME  # type: ignore[assignment]  # Celery types it None

    def _offline(self, conn: Connection) -> None:
        if registry.mark_offline(conn, self.info.name, self.info.pid):
            event_log.record(conn, "worker_offline", {"worker": self.info.name})
            logger.info("worker %s offline", self.info.name)

    def _detail(self) -> dict[str, Any]:
        return {"worker": self.info.name, "pid": self.info.pid, "queues": self.info.queues,
                "concurrency": self.info.concurrency, "pool": self.info.pool}  # fmt: skip


def on_worker_ready(consumer: Any) -> None:
    """Register this worker and start its heartbeat (``worker_ready``, main process).

    Raises:
        WorkerShutdown: another live process answers to this node name; the worker stops
            before it consumes anything, with :data:`EXIT_DUPLICATE_NAME`.
    """
    global _current
    settings = get_settings().workers
    presence = Presence(worker_info(consumer), settings.heartbeat_s, settings.lost_after_s)
    name = presence.info.name
    namesake = _live_namesake(name)
    if namesake is not None:
        logger.error("worker %s: another live process answers to this node name (%s); "
                     "not starting. Start this worker with another --hostname (-n)",
                     name, namesake)  # fmt: skip
        raise WorkerShutdown(EXIT_DUPLICATE_NAME)
    _current = presence
    _current.start()


def _live_namesake(name: str) -> str | None:
    """The other live process answering to ``name`` as the error names it (its pid in the
    registry), or None when there is none. Only a row left ``online`` is worth a ping (of
    at most ``_PING_TIMEOUT_S``): a first start, or one after a clean stop, pays nothing."""
    try:
        held = in_transaction(lambda conn: registry.holder(conn, name), retry_s=0)
    except Exception:  # PostgreSQL out of reach: the broker can still tell
        held = None
    else:
        if held is None or held.state is not WorkerState.ONLINE:
            return None
    # This process cannot answer its own ping yet: its event loop starts after worker_ready.
    if name not in answering([name]):
        return None
    return "unknown pid" if held is None else f"pid {held.pid} in the registry"


def on_worker_shutdown() -> None:
    """Mark this worker offline (``worker_shutdown``: a warm shutdown, main process)."""
    global _current
    if _current is not None:
        _current.stop()
        _current = None


def answering(names: list[str], timeout_s: float = _PING_TIMEOUT_S) -> set[str]:
    """Those of the workers ``names`` that answer Celery's ping within ``timeout_s``: alive
    and consuming, whatever their heartbeats say. Empty when the broker cannot be reached."""
    from hive.tasks.app import app

    try:
        replies = app.control.ping(destination=names, timeout=timeout_s, limit=len(names))
    except Exception as exc:  # the broker is down: no second opinion to be had
        logger.warning("could not ping workers %s: %s", ", ".join(names), exc)
        return set()
    return {name for reply in replies or [] for name in reply} & set(names)
