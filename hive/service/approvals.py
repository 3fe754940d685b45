"""Approvals: the steps held for a person's decision, and deciding them.

Reading them is a ``viewer``'s right (a listing shows ids, the pipeline and why, never the
input, which may hold personal data: :func:`get_approval` has it); approving and rejecting
is an ``admin``'s, for its tenant's runs, and the operator's (``Right.DECIDE``). Another
tenant's approval is :class:`~hive.errors.ApprovalNotFound`, as if there were none.
Deciding goes through :mod:`hive.tasks.approvals`: a compare-and-set, so of two people
deciding at once one does and the other hears who did.
"""

from __future__ import annotations

import uuid
from typing import Any

from hive.db import approvals as store
from hive.db.retrying import Connection, in_transaction
from hive.errors import ApprovalNotFound, InvalidArgument, RunNotFound
from hive.logs import log_context
from hive.service.arguments import check_listing, parse_run_id
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.views import ApprovalEvent, ApprovalView
from hive.settings import Settings

_TEXT_MAX = 200
_REASON_MAX = 4000


@operation
def list_approvals(
    settings: Settings, caller: Caller, *, pipeline: str | None = None, limit: int = 100
) -> list[ApprovalView]:
    """Pending approvals the caller may see, oldest first, without their input.

    Raises:
        InvalidArgument: ``limit`` is not from 1 to 10,000, or ``pipeline`` is not a name.
    """
    caller.require(Right.READ)
    check_listing(limit=limit, pipeline=pipeline)
    rows = in_transaction(
        lambda conn: store.list_pending(conn, tenant=caller.tenant, pipeline=pipeline, limit=limit),
        retry_s=0,
    )
    return [_view(row) for row in rows]


@operation
def get_approval(
    settings: Settings, caller: Caller, run_id: uuid.UUID | str, step_id: str
) -> ApprovalView:
    """The step's approval, pending or decided, with the input it would run with and every
    request and decision (who, when).

    Raises:
        ApprovalNotFound: the step never asked, or it is not the caller's tenant's.
    """
    caller.require(Right.READ)
    rid = _run_id(run_id, step_id)

    def read(conn: Connection) -> tuple[Any, list[Any]]:
        row = store.get(conn, rid, step_id, tenant=caller.tenant)
        return row, [] if row is None else store.history(conn, rid, step_id)

    row, events = in_transaction(read, retry_s=0)
    if row is None:
        raise ApprovalNotFound(str(rid), step_id)
    history = [ApprovalEvent(e.kind, dict(e.detail or {}), e.created_at) for e in events]
    return _view(row, step_input=row.input, history=history)


@operation
def approve(
    settings: Settings,
    caller: Caller,
    run_id: uuid.UUID | str,
    step_id: str,
    *,
    by: str,
    new_input: dict[str, Any] | None = None,
) -> ApprovalView:
    """Approve the step: it runs (with ``new_input`` in place of its input, if given,
    checked against its agent's input model). Returns the approval as decided.

    Raises:
        PermissionDenied: the role may not decide approvals.
        ApprovalNotFound: no approval of that step that the caller may see.
        ApprovalError: it is decided already (by whom, when), its run's deadline has
            passed (the run ends expired), or ``new_input`` does not fit (names each field).
        InvalidArgument: ``by`` is empty or too long, ``new_input`` is not an object.
    """
    caller.require(Right.DECIDE)
    rid = _run_id(run_id, step_id)
    problems = _text_problems("by", by, _TEXT_MAX)
    if new_input is not None and not isinstance(new_input, dict):
        problems.append(f"the new input must be a JSON object, not {type(new_input).__name__}")
    if problems:
        raise InvalidArgument(problems)
    with log_context(run_id=str(rid), step_id=step_id):
        from hive.tasks import approvals as deciding  # Celery: for the commands that send

        deciding.approve(rid, step_id, by=by, tenant=caller.tenant, new_input=new_input)
    return get_approval(settings, caller, rid, step_id)


@operation
def reject(
    settings: Settings,
    caller: Caller,
    run_id: uuid.UUID | str,
    step_id: str,
    *,
    reason: str,
    by: str,
) -> ApprovalView:
    """Reject the step: it fails for good (a dead letter), and its run as any permanent
    failure leaves it. Returns the approval as decided.

    Raises:
        PermissionDenied: the role may not decide approvals.
        ApprovalNotFound: no approval of that step that the caller may see.
        ApprovalError: it is decided already (by whom, when), or its run's deadline has
            passed (the run ends expired).
        InvalidArgument: ``by`` or ``reason`` is empty or too long.
    """
    caller.require(Right.DECIDE)
    rid = _run_id(run_id, step_id)
    problems = _text_problems("by", by, _TEXT_MAX) + _text_problems("reason", reason, _REASON_MAX)
    if problems:
        raise InvalidArgument(problems)
    with log_context(run_id=str(rid), step_id=step_id):
        from hive.tasks import approvals as deciding

        deciding.reject(rid, step_id, by=by, reason=reason, tenant=caller.tenant)
    return get_approval(settings, caller, rid, step_id)


def _run_id(run_id: uuid.UUID | str, step_id: str) -> uuid.UUID:
    if not isinstance(step_id, str) or not step_id or "\x00" in step_id:
        raise InvalidArgument([f"step_id must be a step id, not {step_id!r}"])
    try:
        return parse_run_id(run_id)
    except RunNotFound:  # text that is no UUID names no approval either
        raise ApprovalNotFound(str(run_id), step_id) from None


def _text_problems(name: str, value: Any, limit: int) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return [f"{name} must be non-empty text"]
    if len(value) > limit:
        return [f"{name} is {len(value):,} characters long; at most {limit}"]
    if "\x00" in value:
        return [f"{name} contains a NUL character (\\u0000)"]
    return []


def _view(
    row: Any, *, step_input: Any = None, history: list[ApprovalEvent] | None = None
) -> ApprovalView:
    return ApprovalView(
        run_id=row.run_id,
        step_id=row.step_id,
        pipeline=row.pipeline,
        tenant=row.tenant,
        agent=row.agent,
        status=row.status,
        source=row.source,
        reason=row.reason,
        requested_at=row.requested_at,
        timeout_at=row.timeout_at,
        timeout_action=row.timeout_action,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        input_edited=row.input_edited,
        input=step_input,
        history=history,
    )
