"""Every status a run, a step or an ended attempt can have, as the database stores it.

A leaf module: the CLI's choices, the service layer, the step path and the SQL all compare
against these members, never against bare strings. ``StrEnum`` members are ``str``, so they
bind as SQL parameters and serialise to JSON unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    BUDGET_EXCEEDED = "budget_exceeded"
    """A step would have spent past a budget (the run's, or its tenant's for the UTC day):
    it did not start, the run's remaining steps were skipped (hive/guard/budgets.py)."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Shown, never stored: an active run (stored ``queued`` or ``running``) with a step
    awaiting a person's decision. Its other branches go on; it is cancelled, expired and
    recovered as any active run (hive/db/runs.py derives it when a run is read)."""


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    AWAITING_APPROVAL = "awaiting_approval"
    """Ready, held until a person approves or rejects it (``approval: required``, or
    escalated by the input guard): no message, no lease, nothing for recovery to send."""


class ApprovalStatus(StrEnum):
    """Where an approval stands (``approvals.status``)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    """Its run was cancelled or expired while it waited."""


class AttemptOutcome(StrEnum):
    """How an attempt that did not succeed ended (``step_attempts.outcome``)."""

    RETRIED = "retried"
    FAILED = "failed"


class UncountedOutcome(StrEnum):
    """How an attempt given back without counting as a try is kept in
    ``step_attempts.outcome``: a row only when it used something (``usage``, calls it paid
    for before it was given back). Not an end of the step: no ``hive_steps_total`` label."""

    DEFERRED = "deferred"
    """To run later (:func:`hive.tasks.outcomes.record_deferral`)."""
    ESCALATED = "escalated"
    """Held for a person (:func:`hive.tasks.holds.escalate`)."""


class DeferOutcome(StrEnum):
    """What became of an attempt given back to wait
    (:func:`hive.tasks.outcomes.record_deferral`)."""

    DEFERRED = "deferred"
    """Pending again; the next attempt is dispatched with the countdown."""
    FAILED = "failed"
    """Deferred for longer than ``HIVE_DEFER_MAX_S`` in a row: failed for good."""


class ServiceStatus(StrEnum):
    """A registered service instance's health, as Consul's checks report it."""

    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"


class WorkerState(StrEnum):
    """A worker in the registry (``workers.state``)."""

    ONLINE = "online"
    OFFLINE = "offline"
    """Stopped cleanly (warm shutdown)."""
    LOST = "lost"
    """Silent for longer than ``HIVE_WORKER_LOST_AFTER_S``: presumed dead."""


ACTIVE_RUN_STATUSES: tuple[RunStatus, ...] = (RunStatus.QUEUED, RunStatus.RUNNING)
FINAL_RUN_STATUSES: tuple[RunStatus, ...] = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.EXPIRED,
    RunStatus.BUDGET_EXCEEDED,
)


class BudgetScope(StrEnum):
    """Which budget a reservation, a warning or a refusal is about."""

    RUN = "run"
    """The run's own ``budget_usd`` (the submit's, else its pipeline's)."""
    TENANT_DAILY = "tenant_daily"
    """The run's tenant's budget for the UTC day (``hive budgets set``)."""


__all__ = [
    "ACTIVE_RUN_STATUSES",
    "FINAL_RUN_STATUSES",
    "ApprovalStatus",
    "AttemptOutcome",
    "BudgetScope",
    "DeferOutcome",
    "RunStatus",
    "ServiceStatus",
    "StepStatus",
    "WorkerState",
]
