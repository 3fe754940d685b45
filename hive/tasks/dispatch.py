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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from celery import chain, group
from celery.canvas import Signature
from sqlalchemy import Connection

from hive import keys
from hive.db import steps as step_store
from hive.db.direct import DirectCursor
from hive.db.retrying import in_transaction, on_direct_cursor
from hive.db.runs import NewStep
from hive.errors import HiveError
from hive.tasks.app import PRIORITIES, app

logger = logging.getLogger(__name__)

_PUBLISH_BATCH = 100

# Hard limit = soft limit + this, so the agent gets a chance to clean up first.
_HARD_LIMIT_MARGIN_S = 5.0


@dataclass
class Publication:
    """Messages decided inside a transaction, to be sent once it has committed."""

    run_id: uuid.UUID
    stretches: list[list[step_store.MarkedStep]] = field(default_factory=list)
    priority: int = PRIORITIES["normal"]
    countdown_s: float | None = None

    def __bool__(self) -> bool:
        return bool(self.stretches)

    @property
    def step_ids(self) -> list[str]:
        return [s.step_id for stretch in self.stretches for s in stretch]

    def canvas(self) -> Signature:
        links = [self._stretch(stretch) for stretch in self.stretches]
        return links[0] if len(links) == 1 else group(links)

    def send(self) -> bool:
        """Publish. If the broker refuses, forget the marks so the recovery sweep sends
        the steps again; the run stays recorded either way. False if not sent."""
        if not self.stretches:
            return True
        try:
            if len(self.stretches) == 1:
                self.canvas().apply_async(countdown=self.countdown_s)
            else:
                # A group's messages go out in Redis pipelines (kombu's publish batches):
                # 1000 took 254 ms this way and 584 ms one LPUSH at a time. Batches of
                # 100 let workers start on the first ones while the rest are built.
                with app.producer_or_acquire() as producer, producer.batch(_PUBLISH_BATCH):
                    self.canvas().apply_async(countdown=self.countdown_s, producer=producer)
        except Exception as exc:  # kombu and redis-py raise many kinds on a lost broker
            logger.warning(
                "could not publish %d steps (%s); recovery will send them", len(self.step_ids), exc
            )
            try:
                in_transaction(
                    lambda conn: step_store.unmark(conn, self.run_id, self.step_ids), retry_s=5
                )
            except HiveError:
                logger.warning("could not unmark; recovery will send them once unconfirmed")
            return False
        try:
            on_direct_cursor(
                lambda cursor: step_store.confirm_published(cursor, self.run_id, self.step_ids),
                retry_s=5,
            )
        except HiveError:
            # Sent but unconfirmed: recovery sends them again; the claim drops the copies.
            logger.warning("could not confirm %d published steps", len(self.step_ids))
        return True

    def _stretch(self, stretch: list[step_store.MarkedStep]) -> Signature:
        sigs = [self._signature(s) for s in stretch]
        return sigs[0] if len(sigs) == 1 else chain(sigs)

    def _signature(self, step: step_store.MarkedStep) -> Signature:
        timeout_s = float(step.options["timeout"])
        args = (str(self.run_id), step.step_id, step.attempt + 1)
        return app.signature(
            keys.RUN_STEP_TASK,
            args=args,
            immutable=True,
            # What Flower shows; given, so Celery need not saferepr every message.
            argsrepr=repr(args),
            kwargsrepr="{}",
            # No queue declaration per message (kombu copies and binds the queue each time,
            # a fifth of a publish): messages go to the anonymous exchange, straight onto the
            # queue's Redis list, which needs no binding; workers declare what they consume.
            declare=[],
            queue=keys.agent_queue(step.options.get("queue")),
            priority=self.priority,
            soft_time_limit=timeout_s,
            time_limit=timeout_s + _HARD_LIMIT_MARGIN_S,
        )


def dispatch_new_run(run_id: uuid.UUID, steps: Sequence[NewStep], priority: str) -> Publication:
    """What a new run sends first: each root step and the linear stretch after it.

    Decided before the run's rows exist, so nothing can race it; the caller inserts the
    rows of ``publication.step_ids`` marked sent (:func:`hive.db.runs.insert_run`).
    """
    publication = Publication(run_id=run_id, priority=PRIORITIES[priority])
    plan = {s.step_id: step_store.MarkedStep(s.step_id, s.chain_next, 0, s.options) for s in steps}
    publication.stretches = _stretches([s.step_id for s in steps if not s.needs], plan)
    return publication


def dispatch(
    db: Connection | DirectCursor,
    run_id: uuid.UUID,
    ready: list[str],
    priority: str,
    *,
    countdown_s: float | None = None,
) -> Publication:
    """Mark ``ready`` steps (and the stretches after them) as sent and return what to publish.

    Only steps whose compare-and-set succeeds are published, so two dispatchers
    racing over the same step publish it once.
    """
    publication = Publication(run_id=run_id, priority=PRIORITIES[priority], countdown_s=countdown_s)
    if ready:
        marked = step_store.mark_enqueued(db, run_id, ready)
        publication.stretches = _stretches(ready, {m.step_id: m for m in marked})
    return publication


def _stretches(
    heads: list[str], marked: dict[str, step_store.MarkedStep]
) -> list[list[step_store.MarkedStep]]:
    """Each marked head with the marked steps after it along ``chain_next``, in order. A
    stretch ends at its first step not marked: a step marked without its predecessor
    would never get a message from this stretch."""
    stretches = []
    for head in sorted(set(heads)):
        stretch: list[step_store.MarkedStep] = []
        step = marked.get(head)
        while step is not None:
            stretch.append(step)
            step = marked.get(step.chain_next) if step.chain_next else None
        if stretch:
            stretches.append(stretch)
    return stretches
