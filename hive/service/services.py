"""The service registry: the services agents call (a tool API, a model server) and their
instances, with health kept by beat's checks (:mod:`hive.beat.health`).

Reading takes ``READ``; registering, heartbeating and deregistering take
``MANAGE_SERVICES`` (admin and operator). A tenant-bound caller registers under its own
tenant and sees only its tenant's instances: another tenant's instance is
:class:`~hive.errors.ServiceInstanceNotFound`, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from hive.addresses import NAME_MAX_CHARS
from hive.db import services as registry
from hive.db.retrying import in_transaction
from hive.errors import InvalidArgument, ServiceInstanceNotFound
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.service_args import check_lookup, check_registration
from hive.service.views import ServiceInstanceView
from hive.settings import Settings
from hive.statuses import ServiceStatus


def _view(row: Any) -> ServiceInstanceView:
    return ServiceInstanceView(
        id=row.id, service=row.service, tenant=row.tenant, url=row.url,
        health_url=row.health_url, ttl_s=row.ttl_s, deregister_after_s=row.deregister_after_s,
        meta=dict(row.meta), status=ServiceStatus(row.status), failures=row.failures,
        last_check_at=row.last_check_at, last_check_output=row.last_check_output,
        last_heartbeat_at=row.last_heartbeat_at, registered_at=row.registered_at,
        critical_since=row.critical_since,
    )  # fmt: skip


@operation
def register_service(
    settings: Settings,
    caller: Caller,
    name: str,
    url: str,
    *,
    health_url: str | None = None,
    ttl_s: float | None = None,
    deregister_after_s: float | None = None,
    meta: dict[str, str] | None = None,
    instance_id: str | None = None,
) -> str:
    """Register an instance of service ``name`` at ``url``; its id. Registering an id
    again updates that instance, and its checks start over (``passing``).

    Raises:
        InvalidArgument: an argument that is not as documented (names each), or an
            ``instance_id`` that another tenant's instance holds.
        PermissionDenied: the caller's role may not manage services.
        TooManyServiceInstances: a new instance, and the caller's tenant has
            ``HIVE_MAX_SERVICE_INSTANCES`` registered already.
    """
    caller.require(Right.MANAGE_SERVICES)
    meta = {} if meta is None else meta
    check_registration(
        name, url, instance_id=instance_id, health_url=health_url, ttl_s=ttl_s,
        deregister_after_s=deregister_after_s, meta=meta,
    )  # fmt: skip
    chosen = instance_id or f"{name[: NAME_MAX_CHARS - 13]}-{uuid.uuid4().hex[:12]}"
    new = registry.NewInstance(
        instance_id=chosen, service=name, tenant=caller.tenant, url=url, health_url=health_url,
        ttl_s=None if ttl_s is None else float(ttl_s),
        deregister_after_s=None if deregister_after_s is None else float(deregister_after_s),
        meta=dict(meta),
    )  # fmt: skip
    cap = settings.health.max_instances
    row = in_transaction(lambda conn: registry.register(conn, new, cap=cap), retry_s=0)
    if row is None:
        raise InvalidArgument([f"instance id {chosen!r} is taken; choose another"])
    return str(row.id)


@operation
def heartbeat_service(settings: Settings, caller: Caller, instance_id: str) -> ServiceInstanceView:
    """Record that the instance is alive (its TTL check passes); the instance after it.

    Raises:
        ServiceInstanceNotFound: no such instance that the caller may see.
        PermissionDenied: the caller's role may not manage services.
    """
    caller.require(Right.MANAGE_SERVICES)
    check_lookup(instance_id=instance_id)
    threshold = settings.health.failures
    row = in_transaction(
        lambda conn: registry.heartbeat(
            conn, instance_id, tenant=caller.tenant, failures_threshold=threshold
        ),
        retry_s=0,
    )
    if row is None:
        raise ServiceInstanceNotFound(instance_id)
    return _view(row)


@operation
def deregister_service(settings: Settings, caller: Caller, instance_id: str) -> ServiceInstanceView:
    """Remove the instance from the registry; the instance as it was.

    Raises:
        ServiceInstanceNotFound: no such instance that the caller may see.
        PermissionDenied: the caller's role may not manage services.
    """
    caller.require(Right.MANAGE_SERVICES)
    check_lookup(instance_id=instance_id)
    row = in_transaction(
        lambda conn: registry.deregister(conn, instance_id, tenant=caller.tenant), retry_s=0
    )
    if row is None:
        raise ServiceInstanceNotFound(instance_id)
    return _view(row)


@operation
def get_service_instance(
    settings: Settings, caller: Caller, instance_id: str
) -> ServiceInstanceView:
    """Raises ServiceInstanceNotFound: no such instance that the caller may see."""
    caller.require(Right.READ)
    check_lookup(instance_id=instance_id)
    row = in_transaction(
        lambda conn: registry.get(conn, instance_id, tenant=caller.tenant), retry_s=0
    )
    if row is None:
        raise ServiceInstanceNotFound(instance_id)
    return _view(row)


@operation
def list_service_instances(
    settings: Settings,
    caller: Caller,
    *,
    name: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[ServiceInstanceView]:
    """The instances the caller may see, by service then id; of service ``name`` and in
    ``status`` when given.

    Raises:
        InvalidArgument: ``name`` is not a service name, ``status`` not a service status,
            ``limit`` not from 1 to 10,000.
    """
    caller.require(Right.READ)
    check_lookup(name=name, status=status, limit=limit)
    rows = in_transaction(
        lambda conn: registry.list_instances(
            conn, tenant=caller.tenant, service=name, status=status, limit=limit
        ),
        retry_s=0,
    )
    return [_view(row) for row in rows]


@operation
def pick_instance(settings: Settings, caller: Caller, name: str) -> ServiceInstanceView:
    """One passing instance of service ``name``, chosen at random so that callers spread
    their load across them.

    Raises:
        NoPassingInstance: none is passing; says how many there are by status.
    """
    caller.require(Right.READ)
    check_lookup(name=name)
    row = in_transaction(lambda conn: registry.pick(conn, name, tenant=caller.tenant), retry_s=0)
    return _view(row)
