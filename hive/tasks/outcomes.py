"""What happens after an attempt ends: record it, release or skip what depends on it,
dispatch what became ready, and finish the run when nothing is left.

Each function runs one transaction (retried while PostgreSQL is unreachable) and
publishes after it commits. Every retry goes back through the one dispatcher.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hive import metrics
from hive.db import claims, deferrals, failures, marks
from hive.db import dead_letters as letters
from hive.db import events as event_log
from hive.db import runs as run_store
from hive.db.budgets import BudgetWarning
from hive.db.retrying import Connection, in_transaction, on_direct_cursor
from hive.db.runs import ClosedRun
from hive.errors import StepDeferred, UnresolvedReference
from hive.guard.budgets import count_warnings, release_attempt
from hive.metrics import StepOutcome
from hive.pipelines.refs import resolve
from hive.settings import get_settings
from hive.statuses import AttemptOutcome, DeferOutcome, RunStatus
from hive.tasks.dispatch import Publication, dispatch
from hive.tasks.retry import retry_delay_s

logger = logging.getLogger(__name__)


def record_success(
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    step_input: Any,
    output: Any,
    *,
    carried_next: str | None = None,
    alone: bool = False,
    close: claims.RunClose | None = None,
    agent: str = "unknown",
    usage: dict[str, float] | None = None,
) -> bool:
    """Record the attempt's success once and dispatch what it made ready; False for a late
    finish (the step was taken back).

    ``carried_next`` is the step whose message this task's own chain will send next. A
    ready dependent marked as sent but not carried here was sent in the chain of another
    copy of this step's message, which lost the claim and dropped its chain: it is
    dispatched again now.

    ``alone`` is for a step expected to leave nothing to do but let its chain go on: the
    success is then one statement, its own transaction (one round trip, where a
    transaction takes three); with ``close`` (see :func:`closing`) it also closes the run
    if this was its last step. If something was left after all (a run to close, a
    dependent that needs sending), a second transaction does it; should this process die
    in between, the recovery sweep does.

    ``agent`` labels the metrics, counted once the outcome is committed. ``usage`` (what
    the agent reported: tokens, cost) is recorded with the success, in its statement.
    """
    done: claims.Succeeded | None = None
    if alone:
        done = on_direct_cursor(
            lambda cursor: claims.succeed_alone(
                cursor, run_id, step_id, attempt, step_input, output, close, usage
            )
        )
        if done is not None and done.closed:
            metrics.run_closed(done.pipeline, done.age_s)
        if done is not None and not _left_to_do(done, carried_next):
            metrics.step_ended(agent, StepOutcome.SUCCEEDED)
            return True

    def txn(conn: Connection) -> tuple[bool, Publication, ClosedRun | None]:
        recorded = done
        if not alone:
            recorded = claims.succeed(conn, run_id, step_id, attempt, step_input, output, usage)
        if recorded is None:
            return False, _after_lost_race(conn, run_id, step_id, attempt), None
        return True, *_after_success(conn, run_id, step_id, recorded, carried_next, output)

    recorded, publication, closed = in_transaction(txn)
    publication.send()
    _count_closed(closed)
    metrics.step_ended(agent, StepOutcome.SUCCEEDED if recorded else StepOutcome.LOST)
    return recorded


def _count_closed(closed: ClosedRun | None) -> None:
    if closed is not None:
        metrics.run_closed(closed.pipeline, closed.age_s)


def _left_to_do(done: claims.Succeeded, carried_next: str | None) -> bool:
    unclosed = done.remaining == 0 and not done.closed
    return unclosed or any(not sent or s != carried_next for s, sent in done.ready)


def _after_success(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    done: claims.Succeeded,
    carried_next: str | None,
    output: Any,
) -> tuple[Publication, ClosedRun | None]:
    """Dispatch what the success made ready and finish the run if it was its last step."""
    orphaned = [s for s, sent in done.ready if sent and s != carried_next]
    if orphaned:
        marks.unmark(conn, run_id, orphaned)
    ready = [s for s, sent in done.ready if not sent or s != carried_next]
    publication = dispatch(conn, run_id, ready, done.priority)
    closed = None
    if done.remaining == 0 and not done.closed:
        closed = finish(
            conn, run_id, done.failed_step,
            spec=(done.run_input, done.output_spec), known={step_id: output},
        )  # fmt: skip
    return publication, closed


def record_failed_attempt(
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    error: dict[str, Any],
    *,
    step_input: Any = None,
    retryable: bool = True,
    retry_s: float | None = None,
    usage: dict[str, float] | None = None,
) -> AttemptOutcome | None:
    """Record a failed attempt and apply the step's retry policy, retrying the transaction
    for up to ``retry_s`` (default ``HIVE_DB_RETRY_S``) while PostgreSQL is unreachable.

    ``usage`` is what the attempt used all the same (the tokens of calls it made), recorded
    with it.

    Returns ``RETRIED`` (the next attempt is dispatched after a backoff), ``FAILED``
    (failed for good: dead letter, descendants skipped), or None when the attempt was lost
    (it no longer owned the step: nothing is recorded but an event, unless the attempt had
    in fact succeeded, in which case what it made ready is sent again).
    """

    agent = "unknown"
    closed: ClosedRun | None = None
    warnings: list[BudgetWarning] = []

    def txn(conn: Connection) -> tuple[AttemptOutcome | None, Publication | None]:
        nonlocal agent, closed
        warnings.clear()
        policy = failures.failure_policy(conn, run_id, step_id)
        agent = policy.agent if policy is not None else "unknown"
        retry = policy is not None and retryable and policy.retries_left(attempt)
        if policy is None or not failures.end_attempt(
            conn, run_id, step_id, attempt, error=error, step_input=step_input, retry=retry,
            usage=usage,
        ):  # fmt: skip
            # If this very attempt had succeeded (its process died after recording it and
            # before Celery sent the chain on), what it made ready is sent again.
            return None, _after_lost_race(conn, run_id, step_id, attempt)
        # A worker that did not settle its budget reservation (it died): released here, so
        # the retry reserves against what is really left.
        warnings.extend(release_attempt(conn, run_id, step_id, attempt, _cost(usage)) or ())
        if retry:
            # The message that carried the rest of this step's chain is done with:
            # the dispatcher sends the chain again with the next attempt.
            marks.unmark_chain_after(conn, run_id, step_id)
            delay = retry_delay_s(attempt - policy.attempt_base, policy.options, error)
            retried = dispatch(conn, run_id, [step_id], policy.priority, countdown_s=delay)
            return AttemptOutcome.RETRIED, retried
        closed = _fail_for_good(conn, run_id, step_id, attempt, error, step_input, policy)
        return AttemptOutcome.FAILED, None

    outcome, publication = in_transaction(txn, retry_s=retry_s)
    count_warnings(warnings)
    if publication:
        if outcome == AttemptOutcome.RETRIED:
            logger.info("attempt %d failed (%s); retry dispatched", attempt, error["type"])
        publication.send()
    if outcome == AttemptOutcome.FAILED:
        logger.warning("step failed for good after %d attempts: %s", attempt, error["type"])
    _count_closed(closed)
    counted = StepOutcome.LOST if outcome is None else StepOutcome(outcome.value)
    metrics.step_ended(agent, counted, reason=str(error.get("type") or "unknown"))
    return outcome


def _cost(usage: dict[str, float] | None) -> float:
    cost = (usage or {}).get("cost")
    return float(cost) if isinstance(cost, int | float) else 0.0


# One countdown at most this long: a step that must wait longer is deferred again when it
# comes back. A message's countdown is held in a worker's memory, unacknowledged, and must
# stay well inside the broker's visibility timeout; a cancelled step's message dies sooner.
MAX_DEFER_COUNTDOWN_S = 300.0


def record_deferral(
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    deferred: StepDeferred,
    usage: dict[str, float] | None = None,
) -> DeferOutcome | None:
    """Give a running attempt back without counting it as a try (:mod:`hive.db.deferrals`):
    the step is pending again and its next attempt is dispatched with the deferral's
    countdown. Past ``HIVE_DEFER_MAX_S`` deferred in a row it fails for good instead, as
    ``deferred_too_long``. Either way ``usage`` (what the attempt used before it was
    deferred: calls it paid for) is recorded with it.

    Returns ``DEFERRED``, ``FAILED``, or None when the attempt no longer owned the step (the
    run was cancelled or expired meanwhile: nothing to do).
    """
    max_wait_s = get_settings().guard.defer_max_s
    countdown_s = min(deferred.countdown_s, MAX_DEFER_COUNTDOWN_S)
    agent = "unknown"
    closed: ClosedRun | None = None

    def txn(conn: Connection) -> tuple[DeferOutcome | None, Publication | None]:
        nonlocal agent, closed
        policy = failures.failure_policy(conn, run_id, step_id)
        if policy is None:
            return None, None
        agent = policy.agent
        deferral = deferrals.defer(
            conn, run_id, step_id, attempt, max_wait_s=max_wait_s, usage=usage
        )
        if deferral is not None:
            deferrals.record_event(
                conn, run_id, step_id, deferral,
                reason=deferred.reason, kind=deferred.kind, countdown_s=countdown_s,
            )  # fmt: skip
            marks.unmark_chain_after(conn, run_id, step_id)
            sent = dispatch(conn, run_id, [step_id], policy.priority, countdown_s=countdown_s)
            return DeferOutcome.DEFERRED, sent
        error = {
            "type": "deferred_too_long",
            "message": f"the step waited longer than HIVE_DEFER_MAX_S ({max_wait_s:g}s) for "
            f"what deferred it; last: {deferred.reason}"[:4000],
            "traceback": None,
        }
        if not failures.end_attempt(
            conn, run_id, step_id, attempt, error=error, step_input=None, retry=False,
            usage=usage,
        ):  # fmt: skip
            return None, None  # cancelled, expired, or taken back meanwhile
        closed = _fail_for_good(conn, run_id, step_id, attempt, error, None, policy)
        return DeferOutcome.FAILED, None

    outcome, publication = in_transaction(txn)
    if publication:
        publication.send()
    if outcome == DeferOutcome.DEFERRED:
        # Debug: a rate-limited farm defers often; the summarised events keep the story.
        logger.debug("deferred %.3gs: %s", countdown_s, deferred.reason)
        metrics.step_deferred(agent, deferred.kind)
    elif outcome == DeferOutcome.FAILED:
        logger.warning("step failed for good: deferred for longer than %gs", max_wait_s)
        metrics.step_ended(agent, StepOutcome.FAILED, reason="deferred_too_long")
    _count_closed(closed)
    return outcome


def _fail_for_good(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    error: dict[str, Any],
    step_input: Any,
    policy: failures.FailurePolicy,
) -> ClosedRun | None:
    letters.add(
        conn,
        run_id,
        step_id,
        pipeline=policy.pipeline,
        agent=policy.agent,
        attempts=attempt - policy.deferrals,
        error=error,
        step_input=step_input,
    )
    skipped = failures.skip_descendants(conn, run_id, step_id)
    run_error = {"step_id": step_id, "type": error["type"], "message": error["message"]}
    count = run_store.count_down(
        conn, run_id, 1 + len(skipped), failed_step=step_id, error=run_error
    )
    if count.remaining == 0:
        return finish(conn, run_id, count.failed_step)
    return None


def finish(
    conn: Connection,
    run_id: uuid.UUID,
    failed_step: str | None,
    *,
    spec: tuple[Any, dict[str, Any] | None] | None = None,
    known: dict[str, Any] | None = None,
) -> ClosedRun | None:
    """Close the run: failed if a step failed, else succeeded with its output. None if it
    was already closed.

    ``spec`` (run input, output spec) and ``known`` step outputs spare reading them again.
    """
    if failed_step is not None:
        return run_store.finish_run(conn, run_id, RunStatus.FAILED)
    if spec is not None and spec[1] is not None:
        run_input, output_spec = spec[0], spec[1]
    else:
        run_input, output_spec = run_store.output_spec_of(conn, run_id)
    reads = _reads(output_spec)
    known = known or {}
    outputs = {s: known[s] for s in reads if s in known}
    outputs.update(run_store.outputs_of(conn, run_id, [s for s in reads if s not in known]))
    try:
        output = _run_output(output_spec, run_input, outputs)
    except UnresolvedReference as exc:
        # Every step succeeded, but the pipeline's output names data they did not produce.
        error = {"step_id": None, "type": "output_unresolved", "message": f"output: {exc}"}
        return run_store.finish_run(conn, run_id, RunStatus.FAILED, error=error)
    return run_store.finish_run(conn, run_id, RunStatus.SUCCEEDED, output)


def closing(
    output_spec: dict[str, Any] | None, run_input: Any, step_id: str, output: Any
) -> claims.RunClose | None:
    """The run's output if ``step_id`` is its last step and the output needs no other
    step's output (the common case: one terminal step); else None."""
    if output_spec is None or not set(_reads(output_spec)) <= {step_id}:
        return None
    outputs = {step_id: output} if step_id in _reads(output_spec) else {}
    try:
        return claims.RunClose(_run_output(output_spec, run_input, outputs))
    except UnresolvedReference:
        return None  # finish() closes the run as failed, saying why


def _reads(output_spec: dict[str, Any]) -> list[str]:
    return list(output_spec.get("reads") or output_spec.get("terminal") or [])


def _run_output(output_spec: dict[str, Any], run_input: Any, outputs: dict[str, Any]) -> Any:
    template = output_spec.get("template")
    return outputs if template is None else resolve(template, run_input, outputs)


def _after_lost_race(
    conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int
) -> Publication:
    """The attempt's outcome was not recorded. If it had succeeded — its commit went through
    before the connection dropped, or its process died after the commit and before Celery
    sent the chain on — make sure what it made ready is sent (copies are dropped by the
    claim). Otherwise record a late finish."""
    if claims.succeeded_at(conn, run_id, step_id, attempt):
        ready = marks.unmark_ready_dependents(conn, run_id, step_id)
        run = run_store.get_run(conn, run_id)
        return dispatch(conn, run_id, ready, run.priority)
    _late_finish(conn, run_id, step_id, attempt)
    return Publication(run_id=run_id)


def _late_finish(conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int) -> None:
    if event_log.record_late_finish(conn, run_id, step_id, attempt):
        logger.info("attempt %d no longer owns the step; its result is not recorded", attempt)


def fail_unstarted(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempts: int,
    error: dict[str, Any],
    step_input: Any = None,
) -> ClosedRun | None:
    """The rest of a permanent failure, for a step failed before it started (rejected at its
    approval; the caller has set it ``failed``): a dead letter, its pending descendants
    skipped, the run counted down and closed ``failed`` if nothing is left. Returns the
    closed run, if this closed it."""
    policy = failures.failure_policy(conn, run_id, step_id)
    if policy is None:
        return None
    return _fail_for_good(conn, run_id, step_id, attempts, error, step_input, policy)
