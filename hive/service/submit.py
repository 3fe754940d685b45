"""Submit: validate, store the run and its steps in one statement, then send its first steps.

A commit whose answer was lost with its connection is told apart from one that never
happened by the run id, made before the insert: the one retry, with the same id (and the
caller's idempotency key, if any), finds the run it stored, or stores it. No key is made
up for a run without one: it would cost an index entry at the run's insert and another at
its close (migration 0017).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hive.db import runs as run_store
from hive.db.retrying import DirectCursor, on_direct_cursor
from hive.errors import InvalidArgument, PermissionDenied, ServiceUnavailable
from hive.keys import PRIORITIES
from hive.logs import current_log_context, log_context, new_trace_id
from hive.pipelines import StepPlan, output_spec, plan_steps
from hive.pipelines.bounds import check_submission
from hive.service.audit import Action, AuditedBy, Outcome
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.pipelines import validate_input
from hive.service.views import RunView, Submitted, run_view
from hive.settings import Settings
from hive.statuses import RunStatus, StepStatus

logger = logging.getLogger(__name__)


@operation
def submit(
    settings: Settings,
    caller: Caller,
    pipeline: str,
    input: Any,
    *,
    tenant: str | None = None,
    priority: str = "normal",
    idempotency_key: str | None = None,
    deadline: float | None = None,
    budget_usd: float | None = None,
    max_in_flight: int = 0,
    audited_by: AuditedBy | None = None,
) -> Submitted:
    """Validate ``input``, store the run and its steps in one transaction, send its first
    steps. A tenant-bound caller submits for its own tenant (``tenant`` may repeat it).
    ``budget_usd`` is the run's cost budget, in place of its pipeline's. With
    ``audited_by``, a run this call creates is recorded in the audit trail (``run.submit``,
    ``ok``) by its own insert; any other outcome is the caller's to record.

    Raises:
        PermissionDenied: the role may not submit, or may not for ``tenant``.
        UnknownPipeline, InputError: nothing is stored or sent.
        InvalidArgument: ``tenant`` empty, ``tenant`` or ``idempotency_key`` too long for
            their columns or holding NUL, or a ``deadline`` that is not a finite positive
            number of seconds, or a ``budget_usd`` that is not a finite positive amount
            (a ValueError too). The caller's own tenant was checked when
            the Caller was made, by the same rule.
        InvalidArgument: ``idempotency_key`` started a run of another pipeline or with
            another input (the same key with the same request gives that run back).
        TooManyRunsInFlight: ``max_in_flight`` (0: no cap) and the tenant has that many
            runs unfinished, and no run of this ``idempotency_key``; nothing is stored or
            sent. Submits racing each other never pass the cap.
        ValueError: an unknown priority.
        ServiceUnavailable: PostgreSQL cannot be reached.
    """
    caller.require(Right.SUBMIT)
    owner = _owner(caller, tenant)
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    check_submission(tenant, idempotency_key, deadline, budget_usd)
    spec = validate_input(settings, caller, pipeline, input)
    run_id = uuid.uuid4()
    trace_id = new_trace_id()
    plan = plan_steps(spec)
    # Celery: imported once the run is known to be sent, not by the commands that never send.
    from hive.tasks.dispatch import dispatch_new_run
    from hive.tasks.holds import hold_new_run

    publication = dispatch_new_run(run_id, plan, priority)
    audit = (
        None
        if audited_by is None
        else audited_by.entry(caller, Action.RUN_SUBMIT, Outcome.OK, tenant)
    )

    def store(cursor: DirectCursor) -> run_store.StoredRun:
        return run_store.insert_run(
            cursor,
            run_id=run_id,
            pipeline=spec.name,
            pipeline_version=spec.version,
            tenant=owner,
            priority=priority,
            run_input=input,
            output_spec=output_spec(spec),
            steps=plan,
            sent=publication.step_ids,
            idempotency_key=idempotency_key,
            deadline_s=deadline,
            trace_id=trace_id,
            # The submit's own budget, else the pipeline's (hive/guard/budgets.py).
            budget_usd=budget_usd if budget_usd is not None else spec.budget_usd,
            # Counted with the insert, under the tenant's lock: racing submits never pass it.
            cap=max_in_flight,
            audit=audit,
        )

    with log_context(run_id=str(run_id), pipeline=spec.name, tenant=owner, trace_id=trace_id):
        # One statement, its own transaction, not retried while PostgreSQL is down: the
        # caller hears at once. Tried a second time, once: the connection may have dropped
        # after the commit, and the run id (or key) then finds the run this call stored.
        try:
            stored = on_direct_cursor(store, retry_s=0)
        except ServiceUnavailable as exc:
            logger.info("submit lost its connection (%s); trying once more", exc)
            stored = on_direct_cursor(store, retry_s=0)
        if stored.id == run_id:
            # The steps' marks were made by the insert's now(), the run's created_at (None
            # when a second try found the run: its marks are confirmed whatever they are).
            publication.marked_at = stored.created_at
            # A broker outage leaves the stored run to recovery (send() says so in the log
            # and returns False); any other publish failure is recorded and raised.
            publication.send()
            if publication.held:
                hold_new_run(run_id, publication.held)
            # The ids as extra too: a producer's own handlers lack Hive's ContextFilter.
            logger.info("run submitted", extra=dict(current_log_context()))
            created_at = stored.created_at
            if created_at is None or publication.held:
                return Submitted(run_id, created=True)
            budget = budget_usd if budget_usd is not None else spec.budget_usd
            if budget is not None:
                budget = round(budget, 9)  # as runs.budget_usd (numeric(20, 9)) keeps it
            return Submitted(
                run_id,
                created=True,
                as_stored=lambda: stored_view(
                    _StoredRow(
                        id=run_id,
                        pipeline=spec.name,
                        pipeline_version=spec.version,
                        tenant=owner,
                        priority=priority,
                        input=input,
                        created_at=created_at,
                        trace_id=trace_id,
                        budget_usd=budget,
                    ),
                    plan,
                ),
            )
    # An earlier submit with this idempotency key: its run, not the one this call made up,
    # if it asked for the same work. A key reused for other work is the caller's mistake:
    # silently answering with the earlier run would drop this request's input unseen.
    stored_id = stored.id
    ids = {"run_id": str(stored_id), "pipeline": spec.name, "tenant": owner}
    _check_same_request(idempotency_key, stored, spec.name)
    logger.info("idempotency key already used; nothing stored", extra=ids)
    return Submitted(stored_id, created=False)


def _check_same_request(key: str | None, earlier: run_store.StoredRun, pipeline: str) -> None:
    """Refuse a repeat of ``key`` that names another pipeline or another input than the
    run the key started (compared as jsonb: key order and 1 against 1.0 do not matter)."""
    if key is None or earlier.pipeline is None:
        return
    if earlier.pipeline != pipeline:
        what = f"pipeline {earlier.pipeline!r}"
    elif not earlier.same_input:
        what = "another input"
    else:
        return
    raise InvalidArgument(
        [f"idempotency_key {key!r} started run {earlier.id} with {what}; a new request "
         "needs a new key"]
    )  # fmt: skip


def _owner(caller: Caller, tenant: str | None) -> str | None:
    if caller.tenant is None or tenant in (None, caller.tenant):
        return caller.tenant or tenant
    raise PermissionDenied(caller.role.value, f"submit runs for tenant {tenant!r}")


@dataclass(frozen=True)
class _StoredRow:
    """A run's row as its insert wrote it: what :func:`stored_view` reads like a row."""

    id: uuid.UUID
    pipeline: str
    pipeline_version: int
    tenant: str | None
    priority: str
    input: Any
    created_at: datetime
    trace_id: str
    budget_usd: float | None
    status: str = RunStatus.QUEUED
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    budget_spent_usd: float = 0.0


@dataclass(frozen=True)
class _StoredStep:
    step_id: str
    agent: str
    needs: list[str]
    status: str = StepStatus.PENDING
    attempt: int = 0
    deferrals: int = 0
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    worker: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def stored_view(run: _StoredRow, plan: list[StepPlan]) -> RunView:
    """The view of a run as its submit stored it, through the same :func:`run_view` as a
    read (tests/integration/test_service.py holds them equal)."""
    steps = [_StoredStep(p.step_id, p.agent, list(p.needs)) for p in plan]
    return run_view(run, steps)
