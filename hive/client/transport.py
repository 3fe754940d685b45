"""What a :class:`~hive.client.Client` needs from the way it reaches the farm.

Two transports implement it: :class:`~hive.client.direct.DirectTransport` calls
:mod:`hive.service` in this process (PostgreSQL and Redis reached directly), and
:class:`~hive.client.http.HttpTransport` calls the HTTP API (``hive api``). Both return the
service layer's views and raise the same :mod:`hive.errors`, so the client above them is
one class whichever a producer picks.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from hive.service.views import (
    ApprovalView,
    DeadLetterView,
    PipelineView,
    RunPage,
    RunState,
    RunView,
    ServiceInstanceView,
)

RunId = uuid.UUID | str


class Transport(Protocol):
    """The operations of the client, each as the service layer defines it."""

    def close(self) -> None: ...

    # Runs.
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
    ) -> uuid.UUID: ...

    def get(self, run_id: RunId) -> RunView: ...

    def state(self, run_id: RunId) -> RunState: ...

    def wait(self, run_id: RunId, timeout: float | None, poll_s: float) -> Any: ...

    def cancel(self, run_id: RunId) -> bool: ...

    def list_page(
        self,
        *,
        status: str | None,
        pipeline: str | None,
        limit: int,
        cursor: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> RunPage: ...

    # Pipelines.
    def pipelines(self) -> dict[str, PipelineView]: ...

    def pipeline(self, name: str) -> PipelineView: ...

    # Dead letters.
    def dead_letters(
        self, *, pipeline: str | None, since: datetime | None, limit: int
    ) -> list[DeadLetterView]: ...

    def replay(
        self, run_id: RunId, input: dict[str, Any] | None, deadline: float | None
    ) -> list[str]: ...

    # Approvals.
    def approvals(self, *, pipeline: str | None, limit: int) -> list[ApprovalView]: ...

    def approval(self, run_id: RunId, step_id: str) -> ApprovalView: ...

    def approve(
        self, run_id: RunId, step_id: str, *, input: dict[str, Any] | None, by: str | None
    ) -> ApprovalView: ...

    def reject(
        self, run_id: RunId, step_id: str, *, reason: str, by: str | None
    ) -> ApprovalView: ...

    # The service registry.
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
    ) -> str: ...

    def heartbeat(self, instance_id: str) -> ServiceInstanceView: ...

    def deregister(self, instance_id: str) -> None: ...

    def instance(self, instance_id: str) -> ServiceInstanceView: ...

    def instances(self, name: str, *, status: str | None) -> list[ServiceInstanceView]: ...

    def pick(self, name: str) -> ServiceInstanceView: ...
