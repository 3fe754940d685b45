"""``/v1/services``: the service registry over HTTP, as Consul's agent API has it.

An admin registers, heartbeats and deregisters its tenant's instances; a viewer reads them
(the service layer checks both). Another tenant's instance is 404. Every change is
recorded in the audit trail, whatever its outcome.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from hive import service
from hive.api.auth import AuthenticatedRoute, audited, principal
from hive.api.errors import ERROR_RESPONSES, Place, problems_at
from hive.api.models import RegisterServiceInput, ServiceInstanceOutput
from hive.service import Action, Principal
from hive.settings import get_settings
from hive.statuses import ServiceStatus

router = APIRouter(
    prefix="/v1", tags=["services"], responses=ERROR_RESPONSES, route_class=AuthenticatedRoute
)


def _location(instance_id: str) -> str:
    return f"/v1/services/instances/{instance_id}"


# Where each argument the service names is in the request.
_REGISTRATION: dict[str, Place] = {
    "service name": ("body", "name"), "url": ("body", "url"),
    "health_url": ("body", "health_url"), "instance id": ("body", "id"),
    "ttl_s": ("body", "ttl_s"), "deregister_after_s": ("body", "deregister_after_s"),
    "meta": ("body", "meta"),
}  # fmt: skip
_INSTANCE: dict[str, Place] = {"instance id": ("path", "instance_id")}
_LISTING: dict[str, Place] = {
    "service name": ("path", "name"), "status": ("query", "status"), "limit": ("query", "limit"),
}  # fmt: skip


@router.post("/services", status_code=201, response_model=ServiceInstanceOutput)
def register_service(
    body: RegisterServiceInput,
    request: Request,
    response: Response,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """Register an instance (its checks start ``passing``); registering an ``id`` again
    updates that instance. The instance's address is in ``Location``."""
    settings = get_settings()
    target = f"instance:{body.id}" if body.id else f"service:{body.name}"
    with (
        problems_at(_REGISTRATION),
        audited(request, who, Action.SERVICE_REGISTER, target) as concerning,
    ):
        instance_id = service.register_service(
            settings, who.caller, body.name, body.url, health_url=body.health_url,
            ttl_s=body.ttl_s, deregister_after_s=body.deregister_after_s, meta=body.meta,
            instance_id=body.id,
        )  # fmt: skip
        view = service.get_service_instance(settings, who.caller, instance_id)
        concerning.tenant = view.tenant
    response.headers["Location"] = _location(instance_id)
    return view.to_json()


@router.get("/services/instances/{instance_id:path}", response_model=ServiceInstanceOutput)
def get_instance(instance_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:  # noqa: B008
    """One instance, with its checks' state."""
    with problems_at(_INSTANCE):
        return service.get_service_instance(get_settings(), who.caller, instance_id).to_json()


@router.put(
    "/services/instances/{instance_id:path}/heartbeat", response_model=ServiceInstanceOutput
)
def heartbeat(
    instance_id: str,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """The instance is alive: its TTL check passes (an instance its probes hold critical
    stays so). The instance after it."""
    with (
        problems_at(_INSTANCE),
        audited(request, who, Action.SERVICE_HEARTBEAT, f"instance:{instance_id}") as concerning,
    ):
        view = service.heartbeat_service(get_settings(), who.caller, instance_id)
        concerning.tenant = view.tenant
    return view.to_json()


@router.delete("/services/instances/{instance_id:path}", status_code=204)
def deregister(
    instance_id: str,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
) -> Response:
    """Remove the instance from the registry."""
    with (
        problems_at(_INSTANCE),
        audited(request, who, Action.SERVICE_DEREGISTER, f"instance:{instance_id}") as concerning,
    ):
        gone = service.deregister_service(get_settings(), who.caller, instance_id)
        concerning.tenant = gone.tenant
    return Response(status_code=204)


@router.get("/services/{name:path}", response_model=list[ServiceInstanceOutput])
def list_instances(
    name: str,
    who: Principal = Depends(principal),  # noqa: B008
    status: ServiceStatus | None = None,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """The service's instances the key may see, by id; ``status=passing`` for those that
    may be called. None: an empty list."""
    with problems_at(_LISTING):
        instances = service.list_service_instances(
            get_settings(), who.caller, name=name, status=status and status.value, limit=limit
        )
    return [instance.to_json() for instance in instances]
