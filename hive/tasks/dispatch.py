"""The one dispatcher: decides which steps run next and emits them as Celery canvas.

Step completion, retries, replay and recovery all call :func:`dispatch` inside the
transaction that made the steps ready, then :meth:`Publication.send` after commit.
Submit calls :func:`dispatch_new_run`, the same decision for a run whose rows do not
exist yet: they are inserted already marked sent, in the submit's one statement.
A ready step and the linear stretch after it (each next step has that one step as
its only need) go out as one ``chain``; several ready stretches as one ``group``.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import chain, group
from celery.canvas import Signature

from hive import keys
from hive.db import events as event_log
from hive.db import failures, marks, undeliverable
from hive.db import runs as run_store
from hive.db.options import step_options
from hive.db.retrying import Connection, in_transaction, on_direct_cursor
from hive.db.runs import NewStep
from hive.errors import DispatchError, HiveError
from hive.logs import current_log_context, log_context
from hive.statuses import RunStatus
from hive.tasks import holds
from hive.tasks.app import app
from hive.tasks.confirms import Confirmations

logger = logging.getLogger(__name__)

_PUBLISH_BATCH = 100

# Hard limit = soft limit + this, so the agent gets a chance to clean up first.
_HARD_LIMIT_MARGIN_S = 5.0

# Set by confirm_in_batches(): publishes are confirmed in batches, off the sender's path.
_batched: Confirmations | None = None


def confirm_in_batches(enabled: bool = True, *, flush_s: float = 5.0) -> None:
    """From now on, this process confirms its publishes in batches, by one thread
    (:mod:`hive.tasks.confirms`), instead of one statement after each publish: for a process
    answering many submits at once (an API process). ``enabled=False`` goes back to one
    statement each, once what is gathered is written (waiting up to ``flush_s``)."""
    global _batched
    if enabled:
        if _batched is None:
            _batched = Confirmations()
        return
    batched, _batched = _batched, None
    if batched is not None and not batched.flush(flush_s):
        logger.warning("publish confirmations still unwritten after %.1fs", flush_s)


@dataclass
class Publication:
    """Messages decided inside a transaction, to be sent once it has committed."""

    run_id: uuid.UUID
    stretches: list[list[marks.MarkedStep]] = field(default_factory=list)
    priority: int = keys.PRIORITIES["normal"]
    countdown_s: float | None = None
    held: list[str] = field(default_factory=list)
    """Ready steps held for a person's approval instead (:mod:`hive.tasks.holds`)."""
    marked_at: datetime | None = None
    """The marks' ``enqueued_at`` (one statement marks them all alike), which their
    confirmation matches; None: not known, any mark of theirs is confirmed."""

    def __bool__(self) -> bool:
        return bool(self.stretches)

    @property
    def step_ids(self) -> list[str]:
        return [s.step_id for stretch in self.stretches for s in stretch]

    def canvas(self) -> Signature:
        return self._canvas(self.stretches)

    def send(self) -> bool:
        """Publish. If the broker is unreachable, forget the marks so that the recovery sweep
        sends the steps again; the run stays recorded either way. False if not sent.

        Raises:
            DispatchError: publishing failed for another reason (a bug, a queue whose Redis
                key holds something else): the steps that cannot go out were failed and
                recorded, since the sweep would meet the same error every time.
        """
        if not self.stretches:
            return True
        run_id = str(self.run_id)
        if current_log_context().get("run_id") == run_id:  # a submit's, a step's own
            return self._send()
        with log_context(run_id=run_id):  # recovery and replay send many runs'
            return self._send()

    def _send(self) -> bool:
        try:
            self._publish(self.stretches)
        except Exception as exc:
            if is_transient_broker_error(exc):
                self._leave_to_recovery(self.stretches, exc)
                return False
            return self._sort_out(exc)
        self._confirm(self.stretches)
        return True

    def _publish(self, stretches: list[list[marks.MarkedStep]]) -> None:
        # Only a retry has a countdown (left out otherwise: Celery's types take no None).
        timing: dict[str, Any] = {} if self.countdown_s is None else {"countdown": self.countdown_s}
        if len(stretches) == 1:
            self._canvas(stretches).apply_async(**timing)
            return
        # A group's messages go out in Redis pipelines (kombu's publish batches): 1000 took
        # 254 ms this way and 584 ms one LPUSH at a time. Batches of 100 let workers start
        # on the first ones while the rest are built.
        with app.producer_or_acquire() as producer, producer.batch(_PUBLISH_BATCH):
            self._canvas(stretches).apply_async(producer=producer, **timing)

    def _sort_out(self, exc: Exception) -> bool:
        """After a publish failed for a reason other than the broker's reachability: find the
        stretches that fail on their own (one may break a whole group), record them, raise.
        Those that go out are confirmed (a copy from a partly sent group is dropped by the
        claim); those that meet a broker outage now are left to recovery."""
        broken: list[tuple[list[marks.MarkedStep], Exception]] = []
        if len(self.stretches) == 1:
            broken.append((self.stretches[0], exc))
        else:
            for stretch in self.stretches:
                try:
                    self._publish([stretch])
                except Exception as alone:
                    if is_transient_broker_error(alone):
                        self._leave_to_recovery([stretch], alone)
                    else:
                        broken.append((stretch, alone))
                else:
                    self._confirm([stretch])
        if not broken:
            return False  # the group's error went away one by one: nothing to record
        cause = broken[0][1]
        heads = [stretch[0].step_id for stretch, _ in broken]
        error = {
            "type": "dispatch_error",
            "message": _describe(cause)[:4000],
            "traceback": "".join(traceback.format_exception(cause))[-16000:],
        }
        in_transaction(lambda conn: _fail_undeliverable(conn, self.run_id, heads, error))
        raise DispatchError(str(self.run_id), heads, _describe(cause)) from cause

    def _leave_to_recovery(self, stretches: list[list[marks.MarkedStep]], exc: Exception) -> None:
        step_ids = [s.step_id for stretch in stretches for s in stretch]
        logger.warning(
            "could not publish %d steps (%s); recovery will send them", len(step_ids), exc
        )
        try:
            in_transaction(lambda conn: marks.unmark(conn, self.run_id, step_ids), retry_s=5)
        except HiveError:
            logger.warning("could not unmark; recovery will send them once unconfirmed")

    def _confirm(self, stretches: list[list[marks.MarkedStep]]) -> None:
        step_ids = [s.step_id for stretch in stretches for s in stretch]
        if _batched is not None:
            _batched.add(self.run_id, step_ids, self.marked_at)
            return
        try:
            on_direct_cursor(
                lambda cursor: marks.confirm_published(
                    cursor, self.run_id, step_ids, self.marked_at
                ),
                retry_s=5,
            )
        except HiveError:
            # Sent but unconfirmed: recovery sends them again; the claim drops the copies.
            logger.warning("could not confirm %d published steps", len(step_ids))

    def _canvas(self, stretches: list[list[marks.MarkedStep]]) -> Signature:
        links = [self._stretch(stretch) for stretch in stretches]
        return links[0] if len(links) == 1 else group(links)

    def _stretch(self, stretch: list[marks.MarkedStep]) -> Signature:
        sigs = [self._signature(s) for s in stretch]
        return sigs[0] if len(sigs) == 1 else chain(*sigs)

    def _signature(self, step: marks.MarkedStep) -> Signature:
        timeout_s = step.options.timeout
        args = (str(self.run_id), step.step_id, step.attempt + 1)
        return app.signature(
            keys.RUN_STEP_TASK,
            args=args,
            immutable=True,
            # What Flower shows; given, so Celery need not saferepr every message.
            argsrepr=repr(args),
            kwargsrepr="{}",
            # Flower, its /metrics and Celery's log lines name the step by its agent; the
            # task that runs it is still RUN_STEP_TASK, so queued messages keep working.
            shadow=keys.step_task_name(step.agent),
            # No queue declaration per message (kombu copies and binds the queue each time,
            # a fifth of a publish): messages go to the anonymous exchange, straight onto the
            # queue's Redis list, which needs no binding; workers declare what they consume.
            declare=[],
            queue=keys.agent_queue(step.options.queue),
            priority=self.priority,
            soft_time_limit=timeout_s,
            time_limit=timeout_s + _HARD_LIMIT_MARGIN_S,
        )


def dispatch_new_run(run_id: uuid.UUID, steps: Sequence[NewStep], priority: str) -> Publication:
    """What a new run sends first: each root step and the linear stretch after it.

    Decided before the run's rows exist, so nothing can race it; the caller inserts the
    rows of ``publication.step_ids`` marked sent (:func:`hive.db.runs.insert_run`), and
    sets ``marked_at`` to the run's ``created_at``: the insert's ``now()``, as the marks'.
    """
    publication = Publication(run_id=run_id, priority=keys.PRIORITIES[priority])
    plan = {
        s.step_id: marks.MarkedStep(s.step_id, s.chain_next, 0, step_options(s.options), s.agent)
        for s in steps
    }
    roots = [s.step_id for s in steps if not s.needs]
    # A root that needs an approval is inserted unsent, then held (holds.hold_ready).
    publication.held = [s for s in roots if plan[s].options.approval == "required"]
    heads = [s for s in roots if s not in publication.held]
    publication.stretches = _stretches(heads, plan)
    return publication


def dispatch(
    conn: Connection,
    run_id: uuid.UUID,
    ready: list[str],
    priority: str,
    *,
    countdown_s: float | None = None,
) -> Publication:
    """Mark ``ready`` steps (and the stretches after them) as sent and return what to publish.

    Only steps whose compare-and-set succeeds are published, so two dispatchers
    racing over the same step publish it once. A ready step that needs a person's approval
    is held instead (``awaiting_approval``), in the same transaction.
    """
    publication = Publication(
        run_id=run_id, priority=keys.PRIORITIES[priority], countdown_s=countdown_s
    )
    if ready:
        marked = {
            m.step_id: m
            for m in marks.mark_enqueued(conn, run_id, ready, delay_s=countdown_s or 0.0)
        }
        publication.stretches = _stretches(ready, marked)
        if marked:
            publication.marked_at = next(iter(marked.values())).marked_at
        unmarked = [s for s in ready if s not in marked]
        if unmarked:  # sent by another dispatcher, or awaiting a person's approval
            publication.held = holds.hold_ready(conn, run_id, unmarked)
    return publication


def _stretches(
    heads: list[str], marked: dict[str, marks.MarkedStep]
) -> list[list[marks.MarkedStep]]:
    """Each marked head with the marked steps after it along ``chain_next``, in order. A
    stretch ends at its first step not marked: a step marked without its predecessor
    would never get a message from this stretch."""
    stretches = []
    for head in sorted(set(heads)):
        stretch: list[marks.MarkedStep] = []
        step = marked.get(head)
        while step is not None:
            stretch.append(step)
            step = marked.get(step.chain_next) if step.chain_next else None
        if stretch:
            stretches.append(stretch)
    return stretches


# What a broker that cannot be reached (or cannot take a message just now) raises. kombu
# retries its publish, then re-raises whatever redis-py raised as its OperationalError: a
# refused connection and a WRONGTYPE reply both come out as one (measured, kombu 5.7), and
# a batch failure as BatchPublishError, so the cause decides.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # socket errors
    redis.exceptions.ConnectionError,  # refused, reset, still loading its dataset
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a failover: writes go to a replica for a moment
    redis.exceptions.OutOfMemoryError,  # maxmemory reached: frees up as workers consume
    redis.exceptions.MasterDownError,  # a replica lost its primary: failover under way
    redis.exceptions.TryAgainError,  # cluster resharding
    redis.exceptions.ClusterDownError,
    kombu.exceptions.LimitExceeded,  # every pooled connection busy
)
# Replies redis-py has no class for, which say "not now" rather than "never": a failed
# snapshot refusing writes (disk full), too few replicas for min-replicas-to-write, a
# script or module busy past its time limit.
_TRANSIENT_REPLIES = ("MISCONF", "NOREPLICAS", "BUSY")


def is_transient_broker_error(exc: BaseException) -> bool:
    """True when publishing may succeed later unchanged: the broker is unreachable or
    briefly unable to take messages. Anything else would fail the same way again."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, _TRANSIENT):
            return True
        if isinstance(seen, redis.exceptions.ResponseError) and str(seen).startswith(
            _TRANSIENT_REPLIES
        ):
            return True
        if seen.__cause__ is None:
            # kombu's own error, not a translation of redis-py's (no cause attached).
            return isinstance(seen, kombu.exceptions.OperationalError)
        seen = seen.__cause__
    return False


def _describe(exc: BaseException) -> str:
    """The innermost cause, as one line: kombu's wrapping says less than redis-py's reply."""
    root = exc
    for _ in range(8):
        if root.__cause__ is None:
            break
        root = root.__cause__
    # jsonb cannot hold a NUL character.
    return f"{type(root).__name__}: {root}".replace("\x00", "")


def _fail_undeliverable(
    conn: Connection, run_id: uuid.UUID, heads: list[str], error: dict[str, Any]
) -> None:
    """Fail ``heads`` for good (dead letters), skip what depends on them and close the run
    if nothing is left: the step-failure path, for steps that never started."""
    failed = undeliverable.fail_undeliverable(conn, run_id, heads, error)
    for step_id in failed:
        skipped = failures.skip_descendants(conn, run_id, step_id)
        run_error = {"step_id": step_id, "type": error["type"], "message": error["message"]}
        count = run_store.count_down(
            conn, run_id, 1 + len(skipped), failed_step=step_id, error=run_error
        )
        if count.remaining == 0:
            run_store.finish_run(conn, run_id, RunStatus.FAILED)
    if failed:
        detail = {"steps": failed, "type": error["type"], "message": error["message"]}
        event_log.record(conn, "dispatch_failed", detail, run_id=run_id)
