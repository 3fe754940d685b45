"""The audit trail: every call that changes something, who made it and how it ended.

A record names the key (its id, never the key), the tenant the change concerns (the
caller's own, or for the operator the tenant of what it changed), the caller's role, the
action (``run.submit``, ``run.cancel``, ``key.create``, ``key.revoke``), its target
(``run:<id>``, ``pipeline:<name>``, ``key:<id>``), the outcome and the client's address.
The HTTP API records its calls after each one; key changes are recorded in their own
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hive.db import api_keys as key_store
from hive.db.retrying import Connection, in_autocommit, in_transaction
from hive.db.runs import AuditEntry
from hive.errors import (
    ApiKeyNotFound,
    ApprovalNotFound,
    InputError,
    InvalidArgument,
    PermissionDenied,
    RunNotFound,
    ServiceInstanceNotFound,
    TooManyRequests,
    UnknownPipeline,
)
from hive.pipelines.bounds import check_tenant
from hive.service.arguments import as_utc, check_listing
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings

_CLIENT_MAX = 200
# A target names what a client asked for (a run id from a URL path): bounded, whatever it is.
_TARGET_MAX = 300


class Action(StrEnum):
    """What a recorded call did: the ``action`` of its audit record."""

    RUN_SUBMIT = "run.submit"
    RUN_CANCEL = "run.cancel"
    RUN_REPLAY = "run.replay"
    APPROVAL_APPROVE = "approval.approve"
    APPROVAL_REJECT = "approval.reject"
    SERVICE_REGISTER = "service.register"
    SERVICE_HEARTBEAT = "service.heartbeat"
    SERVICE_DEREGISTER = "service.deregister"
    KEY_CREATE = "key.create"
    KEY_REVOKE = "key.revoke"


class Outcome(StrEnum):
    OK = "ok"
    EXISTING = "existing"
    """An idempotent repeat: the earlier call's result was given back."""
    DENIED = "denied"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    REFUSED = "refused"
    """Admission turned it away (rate, runs in flight): nothing was tried."""
    FAILED = "failed"


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome a call that raised ``exc`` is recorded with."""
    if isinstance(exc, PermissionDenied):
        return Outcome.DENIED
    if isinstance(
        exc,
        RunNotFound | UnknownPipeline | ApprovalNotFound | ApiKeyNotFound | ServiceInstanceNotFound,
    ):
        return Outcome.NOT_FOUND
    if isinstance(exc, InputError | InvalidArgument | ValueError):
        return Outcome.INVALID
    if isinstance(exc, TooManyRequests):
        return Outcome.REFUSED
    return Outcome.FAILED


@dataclass(frozen=True)
class AuditView:
    id: int
    key_id: str | None
    tenant: str | None
    role: str
    action: str
    target: str | None
    outcome: str
    client: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key_id": self.key_id,
            "tenant": self.tenant,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "client": self.client,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class AuditedBy:
    """Who makes a call that the audit trail records with the change itself (a submit's
    record is written by the run's own insert): the key's id, never the key, and the
    client's address."""

    key_id: str | None
    client: str | None

    def entry(
        self, caller: Caller, action: Action, outcome: Outcome, tenant: str | None = None
    ) -> AuditEntry:
        """The record, but its target (the change's own statement names it)."""
        return AuditEntry(
            key_id=self.key_id,
            tenant=caller.tenant if caller.tenant is not None else _filed_under(tenant),
            role=caller.role.value,
            action=action.value,
            outcome=outcome.value,
            client=(self.client or None) and self.client[:_CLIENT_MAX],
        )


def _filed_under(tenant: str | None) -> str | None:
    """The tenant an operator's record is filed under: the one it named, unless no run
    could be stored under that name (a refused call's argument, NUL and all), which no
    tenant's trail may show and the column may not hold: then none, the operator's own."""
    try:
        check_tenant(tenant)
    except InvalidArgument:
        return None
    return tenant


def record(
    conn: Connection,
    key_id: str | None,
    caller: Caller,
    action: Action,
    target: str | None,
    outcome: Outcome,
    client: str | None,
    tenant: str | None = None,
) -> None:
    """Write one record inside the caller's transaction."""
    entry = AuditedBy(key_id, client).entry(caller, action, outcome, tenant)
    key_store.insert_audit(
        conn,
        key_id=entry.key_id,
        tenant=entry.tenant,
        role=entry.role,
        action=entry.action,
        # A target may quote a path the client sent: PostgreSQL text holds no NUL.
        target=target.replace("\x00", "\\u0000")[:_TARGET_MAX] if target else None,
        outcome=entry.outcome,
        client=entry.client,
    )


@operation
def record_audit(
    settings: Settings,
    caller: Caller,
    *,
    key_id: str | None,
    action: Action,
    target: str | None,
    outcome: Outcome,
    client: str | None,
    tenant: str | None = None,
) -> None:
    """Record a call that changed (or tried to change) something, in its own transaction
    (one statement: no ``BEGIN``/``COMMIT`` round trips). ``tenant``: the tenant of what an
    operator changed."""
    in_autocommit(
        lambda conn: record(conn, key_id, caller, action, target, outcome, client, tenant),
        retry_s=0,
    )


@operation
def list_audit(
    settings: Settings,
    caller: Caller,
    *,
    tenant: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditView]:
    """Audit records, newest first: the caller's tenant's, or for the operator every
    tenant's (or ``tenant``'s).

    Raises:
        PermissionDenied: neither an admin nor the operator, or a tenant's admin asking
            for another tenant.
        InvalidArgument: ``limit`` or ``since`` are not what they say.
    """
    caller.require(Right.AUDIT)
    check_listing(limit=limit, since=since)
    since = None if since is None else as_utc("since", since)
    if caller.tenant is not None and tenant not in (None, caller.tenant):
        raise PermissionDenied(caller.role.value, f"read the audit trail of tenant {tenant!r}")
    scope = caller.tenant if caller.tenant is not None else tenant
    rows = in_transaction(
        lambda conn: key_store.list_audit(conn, tenant=scope, since=since, limit=limit),
        retry_s=0,
    )
    return [AuditView(**row.__dict__) for row in rows]
