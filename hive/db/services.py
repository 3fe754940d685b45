"""The service registry: register, heartbeat, deregister and read service instances.

``tenant`` scopes every call as it scopes runs: with a tenant, another tenant's instance
(or one of no tenant) is not there at all; None (the operator) reaches every instance.
Instance ids are unique across tenants, so a tenant cannot take an id another one holds.
A run's step reaches other instances (:func:`pick` with ``for_run``): those of its tenant
and the farm's shared ones, of no tenant; a run of no tenant, the shared ones alone; a step
that sends a credential from the worker's environment, the shared ones alone too
(:class:`hive.tasks.lookup.RegistryLookup`).
Every status change and every deregistration is an event in the same transaction
(``service_status``, ``service_registered``, ``service_deregistered``); the checks' own
writes are in :mod:`hive.db.service_checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from hive.db import events as event_log
from hive.db.models import service_instances as instances
from hive.db.runs import tenant_lock
from hive.errors import NoPassingInstance, TooManyServiceInstances
from hive.statuses import ServiceStatus


@dataclass(frozen=True)
class NewInstance:
    """What a registration stores; the service layer has checked every field."""

    instance_id: str
    service: str
    tenant: str | None
    url: str
    health_url: str | None
    ttl_s: float | None
    deregister_after_s: float | None
    meta: dict[str, str]


def status_changed(
    conn: Connection, row: Any, old: str, new: str, reason: str, **detail: Any
) -> None:
    """Record one status change of an instance (``row`` has id, service, tenant)."""
    event_log.record(
        conn,
        "service_status",
        {"instance_id": row.id, "service": row.service, "tenant": row.tenant,
         "from": old, "to": new, "reason": reason, **detail},
    )  # fmt: skip


def deregistered(conn: Connection, row: Any, reason: str) -> None:
    critical_since = row.critical_since.isoformat() if row.critical_since else None
    event_log.record(
        conn,
        "service_deregistered",
        {"instance_id": row.id, "service": row.service, "tenant": row.tenant,
         "status": row.status, "critical_since": critical_since, "reason": reason},
    )  # fmt: skip


def _scoped(query: Any, tenant: str | None, *, for_run: bool = False) -> Any:
    if for_run:
        # A step may call its own tenant's instances and the shared ones, never another's.
        shared = instances.c.tenant.is_(None)
        return query.where(shared if tenant is None else shared | (instances.c.tenant == tenant))
    return query if tenant is None else query.where(instances.c.tenant == tenant)


def _locked(conn: Connection, instance_id: str) -> Any:
    query = select(instances).where(instances.c.id == instance_id).with_for_update()
    return conn.execute(query).first()


# The advisory-lock space of the cap on a tenant's instances (hive.db.runs.tenant_lock).
_INSTANCE_CAP_LOCKS = 7419003
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")


def _admit(conn: Connection, tenant: str | None, cap: int) -> None:
    """Raise TooManyServiceInstances when ``tenant`` has ``cap`` instances (0: no cap).
    Under a transaction-level lock of the tenant's, held until the insert commits: the
    count, a statement after the lock, sees every instance a racing registration
    committed, so no two take the last place."""
    if not cap:
        return
    space, key = tenant_lock(_INSTANCE_CAP_LOCKS, tenant)
    conn.execute(_LOCK, {"space": space, "key": key})
    # ix_service_instances_tenant_service: the tenant's own rows alone.
    mine = instances.c.tenant.is_(None) if tenant is None else instances.c.tenant == tenant
    count = conn.execute(select(func.count()).select_from(instances).where(mine)).scalar_one()
    if count >= cap:
        raise TooManyServiceInstances(tenant, cap)


def register(conn: Connection, new: NewInstance, *, cap: int = 0) -> Any:
    """Insert the instance, or update the one of that id (a re-registration: its checks
    start over, ``passing``). Returns the stored row, or None when the id is held by an
    instance ``new.tenant`` may not see.

    Raises:
        TooManyServiceInstances: a new instance, and ``new.tenant`` has ``cap`` (0: no
            cap) already. A re-registration is never refused.
    """
    values = {
        "id": new.instance_id, "service": new.service, "tenant": new.tenant,
        "url": new.url, "health_url": new.health_url, "ttl_s": new.ttl_s,
        "deregister_after_s": new.deregister_after_s, "meta": new.meta,
        "status": ServiceStatus.PASSING, "failures": 0,
    }  # fmt: skip
    while True:
        existing = _locked(conn, new.instance_id)
        if existing is not None:
            break
        _admit(conn, new.tenant, cap)
        query = pg_insert(instances).values(values).on_conflict_do_nothing()
        row = conn.execute(query.returning(*instances.c)).first()
        if row is not None:
            event_log.record(conn, "service_registered", _identity(row))
            return row
        # Registered by another transaction meanwhile: update that one (or, should it be
        # gone again already, insert).
    if new.tenant is not None and existing.tenant != new.tenant:
        return None
    row = conn.execute(
        update(instances)
        .where(instances.c.id == new.instance_id)
        .values(
            service=new.service, url=new.url, health_url=new.health_url, ttl_s=new.ttl_s,
            deregister_after_s=new.deregister_after_s, meta=new.meta,
            status=ServiceStatus.PASSING, failures=0, last_check_at=None,
            last_check_output=None, last_heartbeat_at=func.now(), critical_since=None,
        )
        .returning(*instances.c)
    ).one()  # fmt: skip
    event_log.record(conn, "service_registered", {**_identity(row), "again": True})
    if existing.status != ServiceStatus.PASSING:
        status_changed(conn, row, existing.status, ServiceStatus.PASSING, "registered")
    return row


def _identity(row: Any) -> dict[str, Any]:
    return {"instance_id": row.id, "service": row.service, "tenant": row.tenant}


def heartbeat(
    conn: Connection, instance_id: str, *, tenant: str | None, failures_threshold: int
) -> Any:
    """Record a heartbeat; the row after it, or None. A heartbeat passes the TTL check, so
    an instance the TTL made critical is passing again, unless its health URL's probes
    (``failures_threshold`` of them in a row) hold it critical."""
    query = _scoped(select(instances).where(instances.c.id == instance_id), tenant)
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        return None
    status = row.status
    held_by_probes = row.health_url is not None and row.failures >= failures_threshold
    if status == ServiceStatus.CRITICAL and not held_by_probes:
        status = ServiceStatus.PASSING
    after = conn.execute(
        update(instances)
        .where(instances.c.id == instance_id)
        .values(
            last_heartbeat_at=func.now(),
            status=status,
            critical_since=instances.c.critical_since if status == row.status else None,
        )
        .returning(*instances.c)
    ).one()
    if status != row.status:
        status_changed(conn, after, row.status, status, "heartbeat")
    return after


def deregister(conn: Connection, instance_id: str, *, tenant: str | None) -> Any:
    """Delete the instance; the deleted row, or None."""
    query = _scoped(delete(instances).where(instances.c.id == instance_id), tenant)
    row = conn.execute(query.returning(*instances.c)).first()
    if row is not None:
        deregistered(conn, row, "deregistered by request")
    return row


def get(conn: Connection, instance_id: str, *, tenant: str | None) -> Any:
    query = _scoped(select(instances).where(instances.c.id == instance_id), tenant)
    return conn.execute(query).first()


def list_instances(
    conn: Connection,
    *,
    tenant: str | None,
    service: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[Any]:
    """By service, then id; ``ix_service_instances_service_status`` serves a service's."""
    query: Select[Any] = select(instances).order_by(instances.c.service, instances.c.id)
    if service is not None:
        query = query.where(instances.c.service == service)
    if status is not None:
        query = query.where(instances.c.status == status)
    return list(conn.execute(_scoped(query.limit(limit), tenant)))


def count_by_status(
    conn: Connection, service: str, *, tenant: str | None, for_run: bool = False
) -> dict[str, int]:
    query = (
        select(instances.c.status, func.count().label("n"))
        .where(instances.c.service == service)
        .group_by(instances.c.status)
    )
    scoped = _scoped(query, tenant, for_run=for_run)
    return {row.status: int(row.n) for row in conn.execute(scoped)}


def pick(
    conn: Connection,
    service: str,
    *,
    tenant: str | None,
    for_run: bool = False,
    exclude: Sequence[str] = (),
    shared: bool = False,
) -> Any:
    """One passing instance of ``service`` at random, so that callers spread their load over
    them; none whose URL is in ``exclude`` (those a caller has tried already). ``for_run``
    scopes it as a run of ``tenant`` sees the registry (see the module's docstring);
    ``shared`` (with ``for_run`` and no tenant) only says so in the error.

    Raises:
        NoPassingInstance: none is left; says how many instances there are by status.
    """
    query = select(instances).where(
        instances.c.service == service, instances.c.status == ServiceStatus.PASSING
    )
    if exclude:
        query = query.where(instances.c.url.not_in(list(exclude)))
    # ix_service_instances_service_status finds a service's few passing rows to shuffle.
    query = _scoped(query, tenant, for_run=for_run).order_by(func.random()).limit(1)
    row = conn.execute(query).first()
    if row is None:
        counts = count_by_status(conn, service, tenant=tenant, for_run=for_run)
        raise NoPassingInstance(service, counts, shared)
    return row


__all__ = [
    "NewInstance",
    "count_by_status",
    "deregister",
    "deregistered",
    "get",
    "heartbeat",
    "list_instances",
    "pick",
    "register",
    "status_changed",
]
