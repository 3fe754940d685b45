"""SQLAlchemy models: the system of record for every run, step, attempt and event."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_TS = DateTime(timezone=True)
_USD = Numeric(20, 9)
_HAS_TENANT = text("tenant IS NOT NULL")

# Python None is SQL NULL, never JSON 'null': `coalesce(error, :error)` must see a NULL.
Json = JSONB(none_as_null=True)


class Base(DeclarativeBase):
    pass


# A run's and a step's rows are rewritten several times within milliseconds of their insert:
# a fifth of each page is left for those versions, so they can be HOT updates (migration 0018).
UPDATE_HEAVY_FILL = 80


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    pipeline_version: Mapped[int] = mapped_column(Integer)
    tenant: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(16))
    input: Mapped[Any] = mapped_column(Json)
    output: Mapped[Any | None] = mapped_column(Json)
    # How to build the output from step outputs: {"template": ..., "terminal": [...]}.
    output_spec: Mapped[Any] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[Any | None] = mapped_column(Json)
    failed_step: Mapped[str | None] = mapped_column(String(200))
    # Steps not yet in a final state; the step that brings it to 0 finishes the run.
    steps_remaining: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    deadline_at: Mapped[datetime | None] = mapped_column(_TS)
    # W3C trace-context trace id (32 hex digits), made at submit; NULL before migration 0009.
    trace_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(_TS)
    finished_at: Mapped[datetime | None] = mapped_column(_TS)
    # The run's cost budget (migration 0016; hive/db/budgets.py): NULL for none; what its
    # steps spent against it and what running steps hold reserved; when it passed 80 %.
    budget_usd: Mapped[Decimal | None] = mapped_column(_USD)
    budget_spent_usd: Mapped[Decimal] = mapped_column(_USD, server_default=text("0"))
    budget_reserved_usd: Mapped[Decimal] = mapped_column(_USD, server_default=text("0"))
    budget_warned_at: Mapped[datetime | None] = mapped_column(_TS)

    __table_args__ = (
        Index(
            "ix_runs_idempotency",
            text("coalesce(tenant, '')"),
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        # Sweeps start here. Not on status: see migration 0003.
        Index("ix_runs_unfinished", "created_at", postgresql_where=text("finished_at IS NULL")),
        # A tenant's unfinished runs, counted by a capped submit (migration 0019); a run
        # without a tenant under '' (no tenant may be empty), as ix_runs_idempotency does.
        Index(
            "ix_runs_unfinished_by_tenant",
            text("coalesce(tenant, '')"),
            postgresql_where=text("finished_at IS NULL"),
        ),
        # A tenant's runs, newest first (migration 0006); runs without one not in them (0017).
        Index("ix_runs_tenant_created", "tenant", "created_at", postgresql_where=_HAS_TENANT),
        Index(
            "ix_runs_tenant_pipeline_created",
            "tenant",
            "pipeline",
            "created_at",
            postgresql_where=_HAS_TENANT,
        ),
        {"postgresql_with": {"fillfactor": UPDATE_HEAVY_FILL}},
    )


class StepRun(Base):
    __tablename__ = "step_runs"
    __table_args__ = ({"postgresql_with": {"fillfactor": UPDATE_HEAVY_FILL}},)

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(200))
    needs: Mapped[list[str]] = mapped_column(ARRAY(Text))
    dependents: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # The unique dependent whose only need is this step: dispatched in one chain with it.
    chain_next: Mapped[str | None] = mapped_column(String(200))
    # Steps whose outputs the input template reads (needs and referenced ancestors).
    inputs_from: Mapped[list[str]] = mapped_column(ARRAY(Text))
    input_template: Mapped[Any] = mapped_column(Json)
    options: Mapped[Any] = mapped_column(Json)
    # 32 since migration 0013: awaiting_approval.
    status: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    pending_needs: Mapped[int] = mapped_column(Integer)
    # Set while a message for the next attempt is believed to be in the broker.
    enqueued_at: Mapped[datetime | None] = mapped_column(_TS)
    # Set with the mark, cleared once the message is published: past it, unconfirmed.
    publish_by: Mapped[datetime | None] = mapped_column(_TS)
    # When a mark with a countdown was made (enqueued_at is when it falls due); NULL for a
    # mark without one, made at enqueued_at. Every mark writes it; read only with a mark.
    countdown_from: Mapped[datetime | None] = mapped_column(_TS)
    # How often recovery sent this step again, its message presumed lost; spaces the next one.
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    lease_until: Mapped[datetime | None] = mapped_column(_TS)
    input: Mapped[Any | None] = mapped_column(Json)
    output: Mapped[Any | None] = mapped_column(Json)
    error: Mapped[Any | None] = mapped_column(Json)
    worker: Mapped[str | None] = mapped_column(String(300))
    task_id: Mapped[str | None] = mapped_column(String(64))
    # What the successful attempt used (ctx.report_usage: tokens, cost...); migration 0011.
    usage: Mapped[Any | None] = mapped_column(Json)
    # Attempts that do not count against max_retries: those before the last replay, and
    # every deferral. Retries are counted from here.
    attempt_base: Mapped[int] = mapped_column(Integer, default=0)
    # Deferrals of the step (limits, breakers: hive/db/deferrals.py), each an attempt number
    # that did not run; and when the current run of them began (cleared when an attempt ends).
    deferrals: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    deferred_since: Mapped[datetime | None] = mapped_column(_TS)
    started_at: Mapped[datetime | None] = mapped_column(_TS)
    finished_at: Mapped[datetime | None] = mapped_column(_TS)


class StepAttempt(Base):
    """One row per attempt that ended without success (the success is on the step itself)."""

    __tablename__ = "step_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE")
    )
    step_id: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[Any | None] = mapped_column(Json)
    worker: Mapped[str | None] = mapped_column(String(300))
    # What the failed attempt used all the same (tokens of calls made); migration 0011.
    usage: Mapped[Any | None] = mapped_column(Json)
    started_at: Mapped[datetime | None] = mapped_column(_TS)
    finished_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())

    __table_args__ = (Index("ix_step_attempts_step", "run_id", "step_id"),)


class Event(Base):
    """Things worth knowing that are not a status: late finishes, recoveries, replays."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now(), index=True)

    __table_args__ = (
        # Each maintenance task's last success, for the exporter (migration 0010).
        Index(
            "ix_events_maintenance",
            text("(detail->>'task')"),
            "created_at",
            postgresql_where=text("kind = 'maintenance'"),
        ),
    )


class Approval(Base):
    """A step's request for a person's decision (migration 0013): the current one and its
    outcome; every request and decision is also an event (``approval_*``)."""

    __tablename__ = "approvals"

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # "required" (the step's option) or "input_guard" (an escalation).
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    # The step's input as resolved when it asked; NULL if it could not be resolved.
    input: Mapped[Any | None] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())
    timeout_at: Mapped[datetime | None] = mapped_column(_TS)
    timeout_action: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(_TS)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    input_edited: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        Index("ix_approvals_pending", "requested_at", postgresql_where=text("status = 'pending'")),
    )


class DeadLetter(Base):
    """A step that failed for good, with what is needed to look at it and replay it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[str] = mapped_column(String(200))
    pipeline: Mapped[str] = mapped_column(String(200))
    agent: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[Any] = mapped_column(Json)
    input: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())
    replayed_at: Mapped[datetime | None] = mapped_column(_TS)

    __table_args__ = (
        Index(
            "ix_dead_letters_open",
            "pipeline",
            "created_at",
            postgresql_where=text("replayed_at IS NULL"),
        ),
    )


class ServiceInstance(Base):
    """One instance of a service agents call (a tool API, a model server), with its health.

    ``status`` follows its checks (hive/db/service_checks.py): a TTL missed, or
    ``HIVE_HEALTH_FAILURES`` failed probes of ``health_url``, make it critical.
    """

    __tablename__ = "service_instances"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    service: Mapped[str] = mapped_column(String(200))
    # Nullable: registered by the operator for every tenant (tenant-managed in issue 12).
    tenant: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    health_url: Mapped[str | None] = mapped_column(Text)
    ttl_s: Mapped[float | None] = mapped_column(Double)
    deregister_after_s: Mapped[float | None] = mapped_column(Double)
    meta: Mapped[Any] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_check_at: Mapped[datetime | None] = mapped_column(_TS)
    # What the last probe found ("HTTP 503", "no answer within 5s"): never the URL.
    last_check_output: Mapped[str | None] = mapped_column(Text)
    last_heartbeat_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())
    registered_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())
    critical_since: Mapped[datetime | None] = mapped_column(_TS)

    __table_args__ = (
        # pick() and `services list NAME [--status S]`; cleanup reads critical ones.
        Index("ix_service_instances_service_status", "service", "status"),
        Index("ix_service_instances_tenant_service", "tenant", "service"),
        Index("ix_service_instances_status", "status"),
    )


class Worker(Base):
    """A `hive worker` process as it registered itself, and what its heartbeats say."""

    __tablename__ = "workers"

    # Celery's node name (``--hostname``): what ``step_runs.worker`` holds.
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[str]] = mapped_column(ARRAY(Text))
    concurrency: Mapped[int] = mapped_column(Integer)
    pool: Mapped[str] = mapped_column(String(32))
    hive_version: Mapped[str] = mapped_column(String(64))
    celery_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(_TS)
    heartbeat_at: Mapped[datetime] = mapped_column(_TS)
    state: Mapped[str] = mapped_column(String(16))
    lost_at: Mapped[datetime | None] = mapped_column(_TS)


class RunClose(Base):
    """How many runs closed, by pipeline and final status: ``hive_runs_total``.

    Only a trigger on ``runs`` writes it (migration 0014), in the transaction that closes a
    run; nothing subtracts, so retention and replays never make the counter go down. Each
    connection adds to its own shard; readers sum them.
    """

    __tablename__ = "run_closes"

    pipeline: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class PurgeCount(Base):
    """How many rows of each kind retention purged: ``hive_purged_total`` (migration 0020).

    The purge adds each batch's count in the transaction that deletes it; nothing
    subtracts."""

    __tablename__ = "purge_counts"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class TenantBudget(Base):
    """A tenant's cost budget per UTC day (``hive budgets set``; migration 0016)."""

    __tablename__ = "tenant_budgets"

    tenant: Mapped[str] = mapped_column(String(200), primary_key=True)
    daily_usd: Mapped[Decimal] = mapped_column(_USD)
    updated_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())


class TenantBudgetDay(Base):
    """What a tenant spent and holds reserved on one UTC day."""

    __tablename__ = "tenant_budget_days"

    tenant: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    spent_usd: Mapped[Decimal] = mapped_column(_USD, server_default=text("0"))
    reserved_usd: Mapped[Decimal] = mapped_column(_USD, server_default=text("0"))
    warned_at: Mapped[datetime | None] = mapped_column(_TS)


class BudgetHold(Base):
    """One step attempt's reservation: against its run's budget (``on_run``) and its
    tenant's ``day`` (``tenant`` set), until the attempt settles or recovery releases it."""

    __tablename__ = "budget_holds"

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_usd: Mapped[Decimal] = mapped_column(_USD)
    on_run: Mapped[bool] = mapped_column(Boolean)
    tenant: Mapped[str | None] = mapped_column(String(200))
    day: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())


class ApiKey(Base):
    """A key of the HTTP API (migration 0015): its id is the key's public part, ``hash`` a
    keyed hash of the whole key (hive/service/keys.py says why a fast one). No key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # NULL: the operator's key, across every tenant.
    tenant: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(_TS)
    revoked_at: Mapped[datetime | None] = mapped_column(_TS)
    last_used_at: Mapped[datetime | None] = mapped_column(_TS)

    __table_args__ = (
        CheckConstraint(
            "role IN ('viewer', 'producer', 'admin', 'operator')", name="ck_api_keys_role"
        ),
        CheckConstraint(
            "(role = 'operator') = (tenant IS NULL)", name="ck_api_keys_operator_tenant"
        ),
    )


class AuditRecord(Base):
    """A call that changed something (migration 0015): who, what, how it ended, from where.
    Never a key or a secret: the key's id names it."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    tenant: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    client: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(_TS, server_default=func.now())

    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_tenant_at", "tenant", "at"),
    )


# Declarative models type ``__table__`` as a FromClause; each is a Table.
runs = cast(Table, Run.__table__)
step_runs = cast(Table, StepRun.__table__)
step_attempts = cast(Table, StepAttempt.__table__)
events = cast(Table, Event.__table__)
dead_letters = cast(Table, DeadLetter.__table__)
approvals = cast(Table, Approval.__table__)
service_instances = cast(Table, ServiceInstance.__table__)
workers = cast(Table, Worker.__table__)
run_closes = cast(Table, RunClose.__table__)
purge_counts = cast(Table, PurgeCount.__table__)
tenant_budgets = cast(Table, TenantBudget.__table__)
tenant_budget_days = cast(Table, TenantBudgetDay.__table__)
budget_holds = cast(Table, BudgetHold.__table__)
api_keys = cast(Table, ApiKey.__table__)
audit = cast(Table, AuditRecord.__table__)
