"""Human approvals in the farm: carrying out a person's decision on a held step.

Steps are held by :mod:`hive.tasks.holds` (the dispatcher and the step task). Approving
puts the step back to pending and
sends it through the one dispatcher; rejecting fails it for good as any permanent failure
does (a dead letter, descendants skipped, the run failed once nothing else can run). A
timeout decides with the step's ``approval_timeout_action`` (beat: :func:`expire_due`).
Every request and decision is an ``approval_*`` event saying who and when.

A step that must not start for another reason (a budget) can follow :func:`reject`'s
path: :func:`hive.tasks.outcomes.fail_unstarted`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hive import metrics
from hive.db import approvals as store
from hive.db import events as event_log
from hive.db.retrying import Connection, in_transaction
from hive.db.runs import ClosedRun
from hive.errors import ApprovalError, ApprovalNotFound
from hive.metrics import StepOutcome
from hive.pipelines.refs import as_literal
from hive.statuses import ApprovalStatus, StepStatus
from hive.tasks.dispatch import Publication, dispatch
from hive.tasks.holds import SYSTEM
from hive.tasks.outcomes import fail_unstarted
from hive.tasks.replay import new_input_problem, pinned_input_problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """A decision carried out."""

    run_id: uuid.UUID
    step_id: str
    status: ApprovalStatus
    decided_by: str
    decided_at: datetime
    sent: list[str]
    """Steps the approval sent (the approved step, unless its run stopped meanwhile)."""


def approve(
    run_id: uuid.UUID,
    step_id: str,
    *,
    by: str,
    tenant: str | None = None,
    new_input: dict[str, Any] | None = None,
    timed_out: bool = False,
) -> Decision:
    """Approve the pending approval of ``step_id``: the step is pending again (with
    ``new_input``, checked against its agent's input model, in place of its template) and
    sent by the one dispatcher. ``tenant`` scopes it (None: any run).

    Raises:
        ApprovalNotFound: no approval of that step (of ``tenant``'s runs).
        ApprovalError: it was decided already (says by whom and when), its run's deadline
            has passed, or ``new_input`` does not fit (names each field).
    """

    def txn(conn: Connection) -> tuple[datetime, Publication]:
        target = _pending(conn, run_id, step_id, tenant)
        template = None
        if new_input is not None:
            problem = new_input_problem(target.agent, step_id, new_input) or (
                pinned_input_problem(target.agent, step_id, target.input_template, new_input)
            )
            if problem is not None:
                raise ApprovalError(str(run_id), step_id, problem)
            template = as_literal(new_input)
        decided_at = store.decide(conn, run_id, step_id, approved=True, by=by, template=template)
        assert decided_at is not None  # pending under our lock
        kind = "approval_timed_out" if timed_out else "approval_approved"
        detail = {"by": by, "input_edited": new_input is not None}
        if timed_out:
            detail["action"] = "approve"
        event_log.record(conn, kind, detail, run_id=run_id, step_id=step_id)
        return decided_at, dispatch(conn, run_id, [step_id], target.priority)

    decided_at, publication = in_transaction(txn, retry_s=0 if not timed_out else None)
    publication.send()
    logger.info("step %s of run %s approved by %s", step_id, run_id, by)
    return Decision(run_id, step_id, ApprovalStatus.APPROVED, by, decided_at,
                    publication.step_ids)  # fmt: skip


def reject(
    run_id: uuid.UUID,
    step_id: str,
    *,
    by: str,
    reason: str,
    tenant: str | None = None,
    timed_out: bool = False,
) -> Decision:
    """Reject the pending approval of ``step_id``: the step fails for good
    (``approval_rejected``, a dead letter), as any permanent failure does.

    Raises:
        ApprovalNotFound: no approval of that step (of ``tenant``'s runs).
        ApprovalError: it was decided already (says by whom and when), or its run's deadline
            has passed.
    """
    closed: ClosedRun | None = None
    agent = "unknown"

    def txn(conn: Connection) -> datetime:
        nonlocal closed, agent
        target = _pending(conn, run_id, step_id, tenant)
        agent = target.agent
        message = "the approval timed out" if timed_out else f"rejected by {by}: {reason}"
        error = {"type": "approval_rejected", "message": message[:4000], "traceback": None}
        decided_at = store.decide(
            conn, run_id, step_id, approved=False, by=by, reason=reason, error=error
        )
        assert decided_at is not None  # pending under our lock
        detail = {"by": by, "reason": reason}
        if timed_out:
            detail["action"] = "reject"
        event = "approval_timed_out" if timed_out else "approval_rejected"
        event_log.record(conn, event, detail, run_id=run_id, step_id=step_id)
        closed = fail_unstarted(conn, run_id, step_id, target.attempt, error)
        return decided_at

    decided_at = in_transaction(txn, retry_s=0 if not timed_out else None)
    metrics.step_ended(agent, StepOutcome.FAILED, reason="approval_rejected")
    if closed is not None:
        metrics.run_closed(closed.pipeline, closed.age_s)
    logger.info("step %s of run %s rejected by %s", step_id, run_id, by)
    return Decision(run_id, step_id, ApprovalStatus.REJECTED, by, decided_at, [])


def _pending(
    conn: Connection, run_id: uuid.UUID, step_id: str, tenant: str | None
) -> store.DecisionTarget:
    target = store.lock_for_decision(conn, run_id, step_id, tenant=tenant)
    if target is None:
        raise ApprovalNotFound(str(run_id), step_id)
    if target.status != ApprovalStatus.PENDING or target.step_status != (
        StepStatus.AWAITING_APPROVAL
    ):
        when = target.decided_at.isoformat(timespec="seconds") if target.decided_at else "?"
        raise ApprovalError(
            str(run_id), step_id, f"the approval was {target.status} by {target.decided_by} "
            f"at {when}; nothing was changed",
        )  # fmt: skip
    if target.past_deadline and target.deadline_at is not None:
        # Approved, the step could never be claimed (claims refuse a run past its deadline);
        # rejected, the run would end failed, not expired. The deadline sweep expires it
        # and closes this approval.
        when = target.deadline_at.isoformat(timespec="seconds")
        raise ApprovalError(
            str(run_id), step_id, f"the run's deadline passed at {when}; the run ends "
            "expired, so nothing was changed",
        )  # fmt: skip
    return target


def expire_due() -> dict[str, int]:
    """For beat: decide every pending approval past its ``approval_timeout`` with its step's
    ``approval_timeout_action``. An approval decided meanwhile by a person is left as is."""
    report = {"approved": 0, "rejected": 0}
    for run_id, step_id, action in in_transaction(store.due):
        try:
            if action == "approve":
                approve(run_id, step_id, by=SYSTEM, timed_out=True)
                report["approved"] += 1
            else:
                reject(run_id, step_id, by=SYSTEM, reason="approval_timeout", timed_out=True)
                report["rejected"] += 1
        except (ApprovalError, ApprovalNotFound):
            continue  # decided, or its run purged, since it was read
    if any(report.values()):
        logger.info("approvals timed out: %s", report)
    return report
