"""The direct transport: the client's operations as calls of :mod:`hive.service` in this
process, which reaches PostgreSQL and Redis itself. ``Client(tenant=..., role=...)``."""

from __future__ import annotations

import getpass
import uuid
from datetime import datetime
from typing import Any

from hive import service
from hive.client.transport import RunId
from hive.service import (
    ApprovalView,
    Caller,
    DeadLetterView,
    PipelineView,
    Role,
    RunPage,
    RunState,
    RunView,
    ServiceInstanceView,
)
from hive.settings import Settings, get_settings


class DirectTransport:
    """Calls the service layer with the settings and the caller it was made with.

    Raises:
        InvalidArgument: a tenant no run could be stored under.
        SettingsError: ``settings`` name another farm than the process's own.
    """

    def __init__(
        self,
        settings: Settings | None,
        tenant: str | None,
        role: Role | str | None,
        identity: str | None,
    ) -> None:
        self.settings = settings or get_settings()
        service.check_farm(self.settings)
        self.caller = Caller.for_tenant(tenant, role)
        self.identity = identity or getpass.getuser()
        """Who decides the approvals decided through this client, unless a call says."""

    def __repr__(self) -> str:
        return f"<DirectTransport tenant={self.caller.tenant!r} role={self.caller.role.value!r}>"

    def close(self) -> None:
        """Nothing to release: the process's pools are its own, shared by every client."""

    def submit(
        self,
        pipeline: str,
        input: Any,
        *,
        tenant: str | None,
        priority: str,
        idempotency_key: str | None,
        deadline: float | None,
        budget_usd: float | None,
    ) -> uuid.UUID:
        submitted = service.submit(
            self.settings, self.caller, pipeline, input, tenant=tenant, priority=priority,
            idempotency_key=idempotency_key, deadline=deadline, budget_usd=budget_usd,
        )  # fmt: skip
        return submitted.run_id

    def get(self, run_id: RunId) -> RunView:
        return service.get_run(self.settings, self.caller, run_id)

    def state(self, run_id: RunId) -> RunState:
        return service.get_run_state(self.settings, self.caller, run_id)

    def wait(self, run_id: RunId, timeout: float | None, poll_s: float) -> Any:
        return service.wait_for_run(
            self.settings, self.caller, run_id, timeout=timeout, poll_s=poll_s
        )

    def cancel(self, run_id: RunId) -> bool:
        return service.cancel_run(self.settings, self.caller, run_id)

    def list_page(
        self,
        *,
        status: str | None,
        pipeline: str | None,
        limit: int,
        cursor: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> RunPage:
        return service.list_runs_page(
            self.settings, self.caller, status=status, pipeline=pipeline, limit=limit,
            cursor=cursor, created_after=created_after, created_before=created_before,
        )  # fmt: skip

    def pipelines(self) -> dict[str, PipelineView]:
        found = service.list_pipelines(self.settings, self.caller)
        return {name: service.pipeline_view(found[name]) for name in sorted(found)}

    def pipeline(self, name: str) -> PipelineView:
        return service.pipeline_view(service.get_pipeline(self.settings, self.caller, name))

    def dead_letters(
        self, *, pipeline: str | None, since: datetime | None, limit: int
    ) -> list[DeadLetterView]:
        return service.list_dead_letters(
            self.settings, self.caller, pipeline=pipeline, since=since, limit=limit
        )

    def replay(
        self, run_id: RunId, input: dict[str, Any] | None, deadline: float | None
    ) -> list[str]:
        return service.replay_run(self.settings, self.caller, run_id, input, deadline=deadline)

    def approvals(self, *, pipeline: str | None, limit: int) -> list[ApprovalView]:
        return service.list_approvals(self.settings, self.caller, pipeline=pipeline, limit=limit)

    def approval(self, run_id: RunId, step_id: str) -> ApprovalView:
        return service.get_approval(self.settings, self.caller, run_id, step_id)

    def approve(
        self, run_id: RunId, step_id: str, *, input: dict[str, Any] | None, by: str | None
    ) -> ApprovalView:
        return service.approve(
            self.settings, self.caller, run_id, step_id, by=by or self.identity, new_input=input
        )

    def reject(self, run_id: RunId, step_id: str, *, reason: str, by: str | None) -> ApprovalView:
        return service.reject(self.settings, self.caller, run_id, step_id, reason=reason,
                              by=by or self.identity)  # fmt: skip

    def register_service(
        self,
        name: str,
        url: str,
        *,
        health_url: str | None,
        ttl_s: float | None,
        deregister_after_s: float | None,
        meta: dict[str, str] | None,
        instance_id: str | None,
    ) -> str:
        return service.register_service(
            self.settings, self.caller, name, url, health_url=health_url, ttl_s=ttl_s,
            deregister_after_s=deregister_after_s, meta=meta, instance_id=instance_id,
        )  # fmt: skip

    def heartbeat(self, instance_id: str) -> ServiceInstanceView:
        return service.heartbeat_service(self.settings, self.caller, instance_id)

    def deregister(self, instance_id: str) -> None:
        service.deregister_service(self.settings, self.caller, instance_id)

    def instance(self, instance_id: str) -> ServiceInstanceView:
        return service.get_service_instance(self.settings, self.caller, instance_id)

    def instances(self, name: str, *, status: str | None) -> list[ServiceInstanceView]:
        return service.list_service_instances(self.settings, self.caller, name=name, status=status)

    def pick(self, name: str) -> ServiceInstanceView:
        return service.pick_instance(self.settings, self.caller, name)
