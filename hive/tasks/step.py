"""The step task: claim, resolve inputs, admit (hive.guard), run the agent, record the outcome."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celery import Task
from celery.signals import task_failure
from prometheus_client import Gauge, Histogram

from hive import keys, metrics
from hive.agents.base import AgentContext
from hive.agents.registry import default_registry
from hive.db import claims
from hive.db import runs as run_store
from hive.db.retrying import in_transaction, on_direct_cursor
from hive.errors import (
    ApprovalRequired,
    BudgetExceeded,
    ServiceUnavailable,
    StatementCanceled,
    StepDeferred,
)
from hive.guard import Admission, FarmCalls, StepInfo, admit_step
from hive.guard.budgets import reserve_step, settled
from hive.logs import log_context
from hive.pipelines.bounds import check_output_bounds
from hive.pipelines.refs import resolve
from hive.screening import screen_step
from hive.settings import get_settings
from hive.tasks import cancel as cancel_run
from hive.tasks import deadline, holds, outcomes
from hive.tasks.app import app
from hive.tasks.log_context import StepRequest, bind_claimed
from hive.tasks.lookup import RegistryLookup
from hive.tasks.retry import error_info, is_retryable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# While PostgreSQL is down at claim time, the message comes back after this long.
_CLAIM_RETRY_COUNTDOWN_S = 5.0
# The claim retries its connection for at most this long...
_CLAIM_RETRY_MAX_S = 30.0
# ...and, before the step's time limit, leaves room for one last connection attempt
# (hive.db.engine's connect timeout) and a backoff sleep.
_CLAIM_LIMIT_MARGIN_S = 10.0
# The worker's main process records a lost attempt only if PostgreSQL answers at once:
# retrying would freeze its consumer, and the attempt's lease already covers it.
_LOST_ATTEMPT_RETRY_S = 1.0


# StepRequest: what the worker's main process logs about a step carries its ids.
@app.task(name=keys.RUN_STEP_TASK, bind=True, max_retries=None, Request=StepRequest)
def run_step(self: Task[Any, None], run_id: str, step_id: str, attempt: int) -> None:
    """Run one attempt of one step. The message carries ids only.

    Args:
        run_id: the run's UUID.
        step_id: the step's id within the run.
        attempt: the attempt this message is for (1 for the first).
    """
    # Every record from here to the end of the task carries the ids (see log_context).
    began = time.monotonic()  # the step's timeout counts from here, as Celery's limits do
    rid = uuid.UUID(run_id)
    settings = get_settings()
    # This task's request, looked up once: each self.request goes through Celery's stack.
    request = self.request
    worker = request.hostname or "?"
    try:
        claimed = on_direct_cursor(
            lambda cursor: claims.claim(
                cursor,
                rid,
                step_id,
                attempt,
                worker=worker,
                task_id=request.id,
                grace_s=settings.recovery.lease_grace_s,
                # Lost only if PostgreSQL crashes before the next flush: then the success
                # is refused (a late finish) and recovery sends the step again.
                wait_for_flush=settings.database.claim_sync_commit,
            ),
            retry_s=_claim_budget_s(settings.database.retry_s, request.timelimit),
        )
    except Exception as exc:
        # Unclaimed, the step has no lease for recovery to notice: the message itself must
        # come back, even when the time limit cut the claim's wait short.
        if isinstance(exc, StatementCanceled):
            # The database is up but gave up on the claim (a DBA's lock or statement
            # timeout): as unclaimed as if it were down.
            logger.warning("claim cancelled (%s); message will come back", exc)
        elif isinstance(exc, ServiceUnavailable) or struck_by_soft_limit(exc):
            logger.warning("database unreachable at claim; message will come back")
        else:
            raise
        raise self.retry(countdown=_CLAIM_RETRY_COUNTDOWN_S, max_retries=None) from None
    if claimed is None:
        # A duplicate, a late message, or a run no longer active: whoever owns it goes on.
        logger.debug("step not claimable; message dropped")
        request.chain = None
        return

    bind_claimed(
        agent=claimed.agent,
        pipeline=claimed.pipeline,
        tenant=claimed.tenant,
        trace_id=claimed.trace_id,
    )
    _observe_wait(claimed.waited_s, request.eta, claimed.options.queue)
    agent_cls = default_registry().get(claimed.agent)
    step_input: Any = None
    cancel = CancelCheck(rid)
    usage: dict[str, float] = {}  # the agent's ctx.usage, recorded with the outcome
    try:
        if agent_cls is None:
            raise LookupError(f"agent {claimed.agent!r} is not installed on this worker")
        step_input = resolve(claimed.input_template, claimed.run_input, claimed.upstream)
        # The input guard (hive/screening): redacted, or blocked, or held for a person.
        step_input = screen_step(
            rid,
            step_id,
            claimed.agent,
            claimed.options.input_guard,
            step_input,
            claimed.input_template,
        )
        guarded = StepInfo(
            run_id=run_id,
            step_id=step_id,
            attempt=attempt,
            agent=claimed.agent,
            tenant=claimed.tenant,
            timeout_s=claimed.options.timeout,
            worker=worker,
        )
        ctx = AgentContext(
            run_id=run_id,
            step_id=step_id,
            attempt=attempt,
            tenant=claimed.tenant,
            logger=_agent_logger(claimed.agent),
            pipeline=claimed.pipeline,
            trace_id=claimed.trace_id,
            upstream={k: claimed.upstream.get(k) for k in claimed.needs},
            is_cancelled=cancel,
            services=RegistryLookup(claimed.tenant),
            usage=usage,
            call=FarmCalls(guarded),
        )
        agent = agent_cls()
        # The agent's and the tenant's limits, held while the agent runs (else StepDeferred);
        # its estimated cost reserved against the budgets (else BudgetExceeded), settled at
        # what it cost before the outcome is recorded.
        with admit_step(guarded) as admission:
            hold = reserve_step(agent, step_input, rid, step_id, attempt)
            with settled(hold, usage), _Timed(claimed.agent):
                output = _execute(
                    lambda: agent.execute(step_input, ctx),
                    began + claimed.options.timeout,
                    cancel,
                    claimed.agent,
                    admission,
                )
        check_output_bounds(output, settings)
    except BudgetExceeded as exceeded:
        # The step does not start; the run ends budget_exceeded, its other steps skipped.
        _settle(partial(cancel_run.stop_for_budget, rid, step_id, attempt, exceeded))
        request.chain = None
        return
    except StepDeferred as deferred:
        # Not a failure: the step waits for its countdown, in no worker slot, and its
        # next attempt does not count against its retries.
        # What it used before (calls paid for) is its own: a copy, as below.
        _settle(partial(outcomes.record_deferral, rid, step_id, attempt, deferred, dict(usage)))
        request.chain = None
        return
    except ApprovalRequired as held:
        # The input guard shows the screened input; an open breaker, the input as resolved.
        shown = step_input if held.step_input is None else held.step_input
        _settle(
            partial(
                holds.escalate,
                rid,
                step_id,
                attempt,
                held.reason,
                shown,
                held.source,
                dict(usage),
            )
        )
        request.chain = None
        return
    except Exception as exc:
        logger.info("attempt failed: %s", type(exc).__name__)
        error, retryable = error_info(exc), is_retryable(exc)
        _settle(
            lambda: outcomes.record_failed_attempt(
                rid,
                step_id,
                attempt,
                error,
                step_input=step_input,
                retryable=retryable,
                # A copy: an abandoned agent (hive.tasks.deadline) may still be adding to it.
                usage=dict(usage),
            )
        )
        request.chain = None
        return
    # The stubs type the chain as a string; Celery keeps the signatures' dicts there.
    carried = _chain_next(cast("list[dict[str, Any]] | None", request.chain), run_id)
    close = outcomes.closing(claimed.output_spec, claimed.run_input, step_id, output)
    # Nothing but the chain's own next step waits on this one, and either the run goes on
    # after it or its output is known here: the success can be one statement.
    alone = set(claimed.dependents) <= {carried} and (
        claimed.steps_remaining > 1 or close is not None
    )
    recorded = _settle(
        lambda: outcomes.record_success(
            rid,
            step_id,
            attempt,
            step_input,
            output,
            carried_next=carried,
            alone=alone,
            close=close,
            agent=claimed.agent,
            usage=usage,
        )
    )
    if not recorded:
        request.chain = None


def _execute(
    run: Callable[[], T], ends_at: float, cancel: CancelCheck, agent: str, admission: Admission
) -> T:
    """The agent's run: in this thread where the pool enforces the step's time limits
    (prefork), else on a thread of its own that is abandoned at the deadline
    (:mod:`hive.tasks.deadline`), keeping the step's slots until it ends."""
    if deadline.enforced_by_pool():
        return run()
    return deadline.call_within(
        run,
        ends_at,
        expire=cancel.expire,
        cancelled=cancel.run_ended,
        agent=agent,
        on_abandon=admission.release_when,
    )


class _Timed:
    """The agent's run: counted as running meanwhile, its duration observed. A class, not a
    generator: entered on every step, and its metric children looked up once per agent."""

    __slots__ = ("_began", "_duration", "_running")

    def __init__(self, agent: str) -> None:
        children = _agent_children.get(agent)
        if children is None:
            children = _agent_children[agent] = (
                metrics.child(metrics.STEPS_RUNNING, agent),
                metrics.child(metrics.STEP_DURATION, agent),
            )
        self._running, self._duration = children
        self._began = 0.0

    def __enter__(self) -> None:
        self._running.inc()
        self._began = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self._running.dec()
        self._duration.observe(time.perf_counter() - self._began)


# By agent: its running-steps gauge and its duration histogram (a bounded set, as agents).
_agent_children: dict[str, tuple[Gauge, Histogram]] = {}


@functools.cache
def _agent_logger(agent: str) -> logging.Logger:
    """``hive.agent.NAME``, looked up once per agent (the same logger logging keeps; its
    ``getLogger`` takes the module's lock at every call)."""
    return logging.getLogger(f"hive.agent.{agent}")


def _observe_wait(waited_s: float | None, eta: Any, queue: str) -> None:
    """Time the step's message waited. A retry's message is due only at its ETA: its wait
    counts from then, not from when its backoff began."""
    if eta:
        with contextlib.suppress(ValueError):
            since_due = time.time() - datetime.fromisoformat(str(eta)).timestamp()
            waited_s = since_due if waited_s is None else min(waited_s, since_due)
    if waited_s is not None:
        metrics.child(metrics.STEP_WAIT, keys.agent_queue(queue)).observe(max(waited_s, 0.0))


def _claim_budget_s(db_retry_s: float, timelimit: Any) -> float:
    """How long the claim may retry its connection: well inside the message's time limits
    ``(hard, soft)``, which start with the task. Past them the claim gives up and the
    message comes back later."""
    limits = [float(t) for t in (timelimit or ()) if t]
    budget = min(db_retry_s, _CLAIM_RETRY_MAX_S)
    if limits:
        budget = min(budget, min(limits) / 2 - _CLAIM_LIMIT_MARGIN_S)
    return max(budget, 0.0)


def _settle(record: Callable[[], T]) -> T:
    """Record an attempt's outcome even if the soft time limit strikes during the write: the
    agent's work is done, the transaction rolled back, and the limit fires only once."""
    try:
        return record()
    except Exception as exc:
        if not struck_by_soft_limit(exc):
            raise
        logger.warning("soft time limit struck while recording the outcome; recording again")
        return record()


def struck_by_soft_limit(exc: BaseException) -> bool:
    """True for the soft time limit itself and for a library's wrapping of it: a signal that
    lands inside SQLAlchemy comes out as a ``StatementError`` whose ``orig`` is the limit."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, SoftTimeLimitExceeded):
            return True
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return False


def _chain_next(chain: list[dict[str, Any]] | None, run_id: str) -> str | None:
    """The step this message's chain sends next (Celery keeps the chain reversed)."""
    if not chain:
        return None
    args: Sequence[Any] = chain[-1].get("args") or ()
    return str(args[1]) if len(args) == 3 and args[0] == run_id else None


class CancelCheck:
    """``ctx.is_cancelled()`` for agents: asks PostgreSQL at most once a second; True at
    once after :meth:`expire` (a step past its timeout under a thread pool)."""

    def __init__(self, run_id: uuid.UUID, every_s: float = 1.0) -> None:
        self._run_id = run_id
        self._every_s = every_s
        self._checked_at = 0.0
        self._cancelled = False
        # A plain flag, not a threading.Event: nothing waits on it, one thread sets it and
        # the agent's reads it, and an Event (a Condition and a lock) cost 3 us every step.
        self._expired = False

    def expire(self) -> None:
        """From the waiting thread: the step ran past its timeout, or its run ended."""
        self._expired = True

    def __call__(self) -> bool:
        return self._expired or self.run_ended()

    def run_ended(self) -> bool:
        """True once the run is no longer active (cancelled, expired, closed)."""
        now = time.monotonic()
        if not self._cancelled and now - self._checked_at >= self._every_s:
            self._checked_at = now
            # Unreachable or timed out: keep going; claim and finish are compare-and-set anyway.
            with contextlib.suppress(ServiceUnavailable, StatementCanceled):
                active = in_transaction(
                    lambda conn: run_store.is_active(conn, self._run_id), retry_s=0
                )
                self._cancelled = not active
        return self._cancelled


@task_failure.connect(sender=run_step)
def _on_lost_attempt(
    sender: Task[Any, Any], task_id: str, exception: BaseException, args: Any, **_: Any
) -> None:
    """In the worker's main process: a pool child died (SIGKILL, OOM, a poison step) or hit
    the hard time limit. The attempt is recorded as failed and the retry policy applies, so
    a step that kills its worker every time ends in the dead letters instead of looping."""
    if not isinstance(exception, WorkerLostError | TimeLimitExceeded):
        return
    run_id, step_id, attempt = args
    kind = "timeout" if isinstance(exception, TimeLimitExceeded) else "worker_lost"
    error = {"type": kind, "message": str(exception) or kind, "traceback": None}
    with log_context(run_id=run_id, step_id=step_id, attempt=attempt, task_id=task_id):
        try:
            outcome = outcomes.record_failed_attempt(
                uuid.UUID(run_id), step_id, attempt, error, retry_s=_LOST_ATTEMPT_RETRY_S
            )
        except (ServiceUnavailable, StatementCanceled):
            # The lease runs out and the recovery sweep takes the step back.
            logger.warning("could not record lost attempt of %s/%s; recovery will", run_id, step_id)
            return
        logger.warning("attempt %s of %s/%s ended: %s; %s", attempt, run_id, step_id, kind, outcome)
