"""Run-level writes and reads: create a run with its steps, count steps down, finish the run."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    case,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.db.direct import DirectCursor
from hive.db.models import Json, runs, step_runs
from hive.db.prepared import PreparedStatement
from hive.errors import TooManyRunsInFlight
from hive.settings import get_settings
from hive.statuses import ACTIVE_RUN_STATUSES, RunStatus, StepStatus


class NewStep(Protocol):
    """A step row to insert, as :func:`hive.pipelines.plan_steps` plans it (the database
    layer knows nothing of pipelines: any object with these attributes will do)."""

    @property
    def step_id(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def needs(self) -> list[str]: ...
    @property
    def dependents(self) -> list[str]: ...
    @property
    def chain_next(self) -> str | None: ...
    @property
    def inputs_from(self) -> list[str]: ...
    @property
    def input_template(self) -> Any: ...
    @property
    def options(self) -> dict[str, Any]: ...


# The run and every step of it, however many, in one statement: on an autocommit cursor,
# a whole submit is one round trip. The steps the dispatcher sends first are inserted
# already marked sent. With its id already stored (this submit's own insert, tried again
# after its answer was lost) or an idempotency key already used by the tenant, the run is
# not inserted, so neither are the steps. The capped form inserts only while the tenant
# has fewer than :cap unfinished runs (the walk over ix_runs_unfinished_by_tenant, the
# tenant's own unfinished runs alone, stops at :cap).
_INSERT_RUN_SQL = """
    WITH {admitted}run AS (
        INSERT INTO runs (id, pipeline, pipeline_version, tenant, priority, input, output_spec,
                          status, steps_remaining, idempotency_key, deadline_at, trace_id,
                          budget_usd)
        {source}
        ON CONFLICT DO NOTHING
        RETURNING id, created_at
    ), steps AS (
        INSERT INTO step_runs (run_id, step_id, position, agent, needs, dependents, chain_next,
                               inputs_from, input_template, options, status, attempt,
                               pending_needs, enqueued_at, publish_by)
        SELECT run.id, s.step_id, s.position, s.agent, s.needs, s.dependents, s.chain_next,
               s.inputs_from, s.input_template, s.options, 'pending', 0, cardinality(s.needs),
               CASE WHEN s.sent THEN now() END,
               CASE WHEN s.sent THEN now() + make_interval(secs => :publish_grace) END
          FROM run, jsonb_to_recordset(:steps) AS s(
               step_id text, position int, agent text, needs text[], dependents text[],
               chain_next text, inputs_from text[], input_template jsonb, options jsonb,
               sent boolean)
    ){audited}
    SELECT {result}
"""
# The audited forms record the submit in the audit trail with the run, in the same statement
# and transaction: only when the run is inserted (a repeat of an idempotency key, or a run
# refused by the cap, is recorded by the caller with its own outcome).
_AUDITED = """, audited AS (
        INSERT INTO audit (key_id, tenant, role, action, target, outcome, client)
        SELECT :audit_key_id, :audit_tenant, :audit_role, :audit_action, 'run:' || run.id,
               :audit_outcome, :audit_client
          FROM run
    )"""
_RUN_VALUES = """:run_id, :pipeline, :pipeline_version, :tenant, :priority, :input, :output_spec,
                'queued', :steps_remaining, :idempotency_key,
                now() + make_interval(secs => :deadline_s), :trace_id, :budget_usd"""
_ADMITTED = """admitted AS (
        SELECT count(*) < :cap AS ok
          FROM (SELECT 1 FROM runs
                 WHERE finished_at IS NULL AND coalesce(tenant, '') = coalesce(:tenant, '')
                 LIMIT :cap) AS unfinished
    ), """
_INSERT_TYPES = {
    "run_id": "uuid", "pipeline": "text", "pipeline_version": "int", "tenant": "text",
    "priority": "text", "input": "jsonb", "output_spec": "jsonb", "steps_remaining": "int",
    "idempotency_key": "text", "deadline_s": "float8", "steps": "jsonb",
    "publish_grace": "float8", "trace_id": "text", "budget_usd": "numeric",
}  # fmt: skip
_AUDIT_TYPES = {
    "audit_key_id": "text", "audit_tenant": "text", "audit_role": "text",
    "audit_action": "text", "audit_outcome": "text", "audit_client": "text",
}  # fmt: skip


def _insert_statement(*, capped: bool, audited: bool) -> PreparedStatement:
    name = "hive_insert_" + ("capped_" if capped else "") + "run" + ("_audited" if audited else "")
    if capped:
        source = f"SELECT {_RUN_VALUES} FROM admitted WHERE admitted.ok"
        result = (
            "(SELECT id FROM run) AS id, (SELECT created_at FROM run) AS created_at,"
            " (SELECT ok FROM admitted) AS admitted"
        )
    else:
        source, result = f"VALUES ({_RUN_VALUES})", "id, created_at FROM run"
    sql = _INSERT_RUN_SQL.format(
        admitted=_ADMITTED if capped else "",
        source=source,
        result=result,
        audited=_AUDITED if audited else "",
    )
    types = {**_INSERT_TYPES, **({"cap": "int"} if capped else {})}
    return PreparedStatement(name, text(sql), {**types, **(_AUDIT_TYPES if audited else {})})


# By (capped, audited).
_INSERTS = {
    (capped, audited): _insert_statement(capped=capped, audited=audited)
    for capped in (False, True)
    for audited in (False, True)
}

# Two-key advisory locks are apart from the one-key ones (the migrations' lock); the first
# key is the space, one per cap (services' is hive.db.services').
_IN_FLIGHT_LOCKS = 7419002


def tenant_lock(space: int, tenant: str | None) -> tuple[int, int]:
    """The advisory lock of ``space`` that holds a tenant's capped writes in line (None:
    no tenant)."""
    name = b"\x00" if tenant is None else tenant.encode()
    digest = hashlib.blake2b(name, digest_size=4).digest()
    return space, int.from_bytes(digest, "big", signed=True)


def _tenant_lock(tenant: str | None) -> tuple[int, int]:
    """The advisory lock that holds a tenant's capped submits in line (None: no tenant)."""
    return tenant_lock(_IN_FLIGHT_LOCKS, tenant)


_RUN_BY_KEY = PreparedStatement(
    "hive_run_by_key",
    # Whether it asked for the same work, compared as jsonb (1 and 1.0 are equal, 1 and true
    # are not): a repeat of the key with another request is refused by the caller.
    text(
        "SELECT id, pipeline, input = :input AS same_input FROM runs"
        " WHERE coalesce(tenant, '') = :tenant AND idempotency_key = :key"
    ),
    {"tenant": "text", "key": "text", "input": "jsonb"},
)
_RUN_BY_ID = PreparedStatement(
    "hive_run_by_id", text("SELECT id FROM runs WHERE id = :run_id"), {"run_id": "uuid"}
)


class AuditEntry(NamedTuple):
    """An audit record to write with a run's insert (its target is the run): the columns
    of :func:`hive.db.api_keys.insert_audit` but the target."""

    key_id: str | None
    tenant: str | None
    role: str
    action: str
    outcome: str
    client: str | None


class StoredRun(NamedTuple):
    """What :func:`insert_run` stored, or found stored (then, for an idempotency key, the
    pipeline and input that earlier run was submitted with)."""

    id: uuid.UUID
    created_at: datetime | None
    pipeline: str | None = None
    same_input: bool = True
    """When this call inserted it; None when it was stored before (this call's first try
    whose answer was lost, or an earlier submit with the same idempotency key)."""


def insert_run(
    cursor: DirectCursor,
    *,
    run_id: uuid.UUID,
    pipeline: str,
    pipeline_version: int,
    tenant: str | None,
    priority: str,
    run_input: Any,
    output_spec: dict[str, Any],
    steps: Sequence[NewStep],
    sent: Collection[str] = (),
    idempotency_key: str | None = None,
    deadline_s: float | None = None,
    trace_id: str | None = None,
    budget_usd: float | None = None,
    cap: int = 0,
    audit: AuditEntry | None = None,
) -> StoredRun:
    """Insert the run and one row per step (status queued / pending), in one statement.
    The ``sent`` steps are marked sent, to be confirmed within ``HIVE_PUBLISH_GRACE_S``
    like :func:`hive.db.marks.mark_enqueued`'s marks.

    With an ``idempotency_key`` already used by the tenant, nothing is inserted and the
    existing run's id is returned (concurrent calls wait on the unique index). Without one,
    ``run_id`` itself tells a second try of this insert (its first commit's answer lost)
    from a new run: found stored, it is returned as inserted.

    With a ``cap`` (0: none), the run is inserted only while the tenant has fewer than
    ``cap`` unfinished runs. The count and the insert run under a transaction-level
    advisory lock of the tenant's, taken in the same round trip: the statement's snapshot
    is taken after the lock, so it sees every run a racing submit committed, and no two
    submits both take the last place.

    With an ``audit`` entry, the insert writes it too (target ``run:<id>``), in the same
    statement: only if the run is inserted.

    Raises:
        TooManyRunsInFlight: the tenant is at ``cap``, and neither this ``run_id`` nor
            this ``idempotency_key`` is stored already.
    """
    rows = [
        {
            "step_id": s.step_id,
            "position": i,
            "agent": s.agent,
            "needs": s.needs,
            "dependents": s.dependents,
            "chain_next": s.chain_next,
            "inputs_from": s.inputs_from,
            "input_template": s.input_template,
            "options": s.options,
            "sent": s.step_id in sent,
        }
        for i, s in enumerate(steps)
    ]
    statement = _INSERTS[bool(cap), audit is not None]
    inserted = cursor.fetch_one(
        statement,
        {
            "run_id": run_id,
            "pipeline": pipeline,
            "pipeline_version": pipeline_version,
            "tenant": tenant,
            "priority": priority,
            "input": run_input,
            "output_spec": output_spec,
            "steps_remaining": len(steps),
            "idempotency_key": idempotency_key,
            "deadline_s": deadline_s,
            "steps": rows,
            "publish_grace": get_settings().recovery.publish_grace_s,
            "trace_id": trace_id,
            "budget_usd": budget_usd,
            **({"cap": cap} if cap else {}),
            **({} if audit is None else {f"audit_{k}": v for k, v in audit._asdict().items()}),
        },
        lock=_tenant_lock(tenant) if cap else None,
    )
    if inserted is not None and inserted["id"] is not None:
        return StoredRun(run_id, inserted["created_at"])
    if idempotency_key is None:
        existing = cursor.fetch_one(_RUN_BY_ID, {"run_id": run_id})
    else:
        existing = cursor.fetch_one(
            _RUN_BY_KEY, {"tenant": tenant or "", "key": idempotency_key, "input": run_input}
        )
    if existing is None:
        if inserted is not None and not inserted["admitted"]:
            raise TooManyRunsInFlight(tenant, cap)
        # The row that stopped the insert was deleted since.
        raise LookupError(f"run {run_id} (idempotency key {idempotency_key!r}) vanished")
    return StoredRun(
        uuid.UUID(str(existing["id"])),
        None,
        existing.get("pipeline"),
        existing.get("same_input") is not False,
    )


_COUNT_DOWN = text(
    """
    UPDATE runs
       SET steps_remaining = steps_remaining - :n,
           failed_step = coalesce(failed_step, :failed_step),
           error = coalesce(error, :error)
     WHERE id = :run_id
    RETURNING steps_remaining, failed_step, status, priority
    """
).bindparams(bindparam("error", type_=Json))


@dataclass(frozen=True)
class RunCount:
    remaining: int
    failed_step: str | None
    status: str
    priority: str


def count_down(
    conn: Connection,
    run_id: uuid.UUID,
    n: int,
    *,
    failed_step: str | None = None,
    error: dict[str, Any] | None = None,
) -> RunCount:
    """Take ``n`` steps off the run's remaining count (row-locked, so exactly one caller sees 0)."""
    row = conn.execute(
        _COUNT_DOWN, {"run_id": run_id, "n": n, "failed_step": failed_step, "error": error}
    ).one()
    return RunCount(row.steps_remaining, row.failed_step, row.status, row.priority)


_OUTPUT_SPEC = text("SELECT input, output_spec FROM runs WHERE id = :run_id")
_OUTPUTS = text(
    "SELECT step_id, output FROM step_runs WHERE run_id = :run_id AND step_id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(Text)))

# Only a run with no step left: whoever decided to close it read that in an earlier
# statement (recovery, a list of such runs read before it closes each one), and a replay
# may have reopened the run since.
_FINISH = text(
    """
    UPDATE runs SET status = :status, output = :output, error = coalesce(:error, error),
                    finished_at = now()
     WHERE id = :run_id AND status IN ('queued', 'running') AND steps_remaining = 0
    RETURNING pipeline, status, extract(epoch FROM finished_at - created_at)::float8 AS age_s
    """
).bindparams(bindparam("output", type_=Json), bindparam("error", type_=Json))


def output_spec_of(conn: Connection, run_id: uuid.UUID) -> tuple[Any, dict[str, Any]]:
    """The run's input and how its output is built."""
    row = conn.execute(_OUTPUT_SPEC, {"run_id": run_id}).one()
    return row.input, row.output_spec


def outputs_of(conn: Connection, run_id: uuid.UUID, step_ids: list[str]) -> dict[str, Any]:
    if not step_ids:
        return {}
    return {
        r.step_id: r.output for r in conn.execute(_OUTPUTS, {"run_id": run_id, "ids": step_ids})
    }


_FINISH_PREPARED = PreparedStatement(
    "hive_finish_run",
    _FINISH,
    {"run_id": "uuid", "status": "text", "output": "jsonb", "error": "jsonb"},
)


@dataclass(frozen=True)
class ClosedRun:
    """A run just moved to a final status."""

    pipeline: str
    status: str
    age_s: float
    """Seconds from its submit to its close."""


def finish_run(
    conn: Connection,
    run_id: uuid.UUID,
    status: RunStatus,
    output: Any = None,
    error: dict[str, Any] | None = None,
) -> ClosedRun | None:
    """Move an active run with no step left to a final status; None if it was already
    final, or has steps left (a replay reopened it)."""
    params = {"run_id": run_id, "status": status, "output": output, "error": error}
    row = _FINISH_PREPARED.execute(conn, params).first()
    return None if row is None else ClosedRun(row.pipeline, row.status, row.age_s)


# Reads for the service layer. ``tenant`` scopes each one: with a tenant, a run of another
# tenant (or of none) is not there at all; None reads across every tenant.


def _scoped(query: Select[Any], tenant: str | None) -> Select[Any]:
    return query if tenant is None else query.where(runs.c.tenant == tenant)


# ``awaiting_approval`` is shown, not stored: an active run with a step held for a person.
_AWAITING = (
    select(step_runs.c.step_id)
    .where(
        step_runs.c.run_id == runs.c.id,
        step_runs.c.status == StepStatus.AWAITING_APPROVAL,
    )
    .exists()
)
_ACTIVE = runs.c.status.in_([str(s) for s in ACTIVE_RUN_STATUSES])
_SHOWN_STATUS = case(
    (and_(_ACTIVE, _AWAITING), literal(str(RunStatus.AWAITING_APPROVAL))),
    else_=runs.c.status,
).label("status")
_RUN_COLUMNS = [_SHOWN_STATUS if c.name == "status" else c for c in runs.c]


def get_run(conn: Connection, run_id: uuid.UUID, *, tenant: str | None = None) -> Any:
    """The run's row, its status as shown (``awaiting_approval`` derived)."""
    query = select(*_RUN_COLUMNS).where(runs.c.id == run_id)
    return conn.execute(_scoped(query, tenant)).first()


_STATE_COLUMNS = (runs.c.id, _SHOWN_STATUS, runs.c.output, runs.c.error, runs.c.tenant)


def is_active(conn: Connection, run_id: uuid.UUID) -> bool:
    """Whether the run may still start steps (neither finished nor stopped)."""
    status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
    return status in ACTIVE_RUN_STATUSES


def get_run_state(conn: Connection, run_id: uuid.UUID, *, tenant: str | None = None) -> Any:
    """The run's status, output and error alone: what a waiting caller polls."""
    query = select(*_STATE_COLUMNS).where(runs.c.id == run_id)
    return conn.execute(_scoped(query, tenant)).first()


def get_steps(conn: Connection, run_id: uuid.UUID) -> list[Any]:
    return list(
        conn.execute(
            select(step_runs).where(step_runs.c.run_id == run_id).order_by(step_runs.c.position)
        )
    )


def list_runs(
    conn: Connection,
    *,
    tenant: str | None = None,
    status: str | None = None,
    pipeline: str | None = None,
    limit: int = 20,
    before: tuple[datetime, uuid.UUID] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[Any]:
    """Newest first (ties by id). With a tenant, ``ix_runs_tenant_created`` (and, with a
    pipeline, ``ix_runs_tenant_pipeline_created``) serve it in index order. ``before``: only
    runs after that (created_at, id) in this order, a page's cursor, which runs inserted
    since cannot shift."""
    query = select(*_RUN_COLUMNS).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    query = _scoped(query, tenant)
    if before is not None:
        query = query.where(tuple_(runs.c.created_at, runs.c.id) < tuple_(*before))
    if created_after is not None:
        query = query.where(runs.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(runs.c.created_at < created_before)
    if status == RunStatus.AWAITING_APPROVAL:
        query = query.where(_ACTIVE, _AWAITING)
    elif status in ACTIVE_RUN_STATUSES:
        query = query.where(runs.c.status == status, ~_AWAITING)
    elif status:
        query = query.where(runs.c.status == status)
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    return list(conn.execute(query))
