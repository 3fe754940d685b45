"""The client's areas besides runs: ``client.services`` (the service registry),
``client.approvals`` (steps held for a person) and ``client.budgets`` (tenants' daily cost
budgets), each calling the client's transport."""

from __future__ import annotations

import uuid
from typing import Any

from hive import service
from hive.client.direct import DirectTransport
from hive.client.transport import Transport
from hive.errors import NotAvailableOverHttp
from hive.service import ApprovalView, BudgetView, ServiceInstanceView
from hive.statuses import ServiceStatus


def direct(transport: Transport, operation: str) -> DirectTransport:
    """The transport if it is the direct one: ``operation`` has no HTTP route.

    Raises:
        NotAvailableOverHttp: a client of the HTTP API.
    """
    if not isinstance(transport, DirectTransport):
        raise NotAvailableOverHttp(operation)
    return transport


class Services:
    """The service registry, as ``Client().services``: the services agents call and their
    instances' health. Registering, heartbeating and deregistering take the ``admin`` or
    ``operator`` role; a tenant-bound client sees its tenant's instances alone. Over HTTP,
    :meth:`pick` chooses among the instances the API lists."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def register(
        self,
        name: str,
        url: str,
        *,
        health_url: str | None = None,
        ttl_s: float | None = None,
        deregister_after_s: float | None = None,
        meta: dict[str, str] | None = None,
        instance_id: str | None = None,
    ) -> str:
        """Register an instance of service ``name`` at ``url``; its id (``instance_id``, or
        a new one). Registering an id again updates it, and its checks start over.

        Args:
            health_url: probed by beat's health sweep: 2xx passing, 429 warning, anything
                else (``HIVE_HEALTH_FAILURES`` times in a row) critical.
            ttl_s: without a heartbeat for longer than this, the instance is critical.
            deregister_after_s: critical for longer than this, it is deregistered.
            meta: text key/values (at most 64), for the callers that pick it.

        Raises:
            InvalidArgument: names each argument that is not as documented.
            PermissionDenied: the client's role may not manage services.
            TooManyServiceInstances: a new instance, and the tenant has
                ``HIVE_MAX_SERVICE_INSTANCES`` registered already (``cap``).
        """
        return self._transport.register_service(
            name, url, health_url=health_url, ttl_s=ttl_s,
            deregister_after_s=deregister_after_s, meta=meta, instance_id=instance_id,
        )  # fmt: skip

    def heartbeat(self, instance_id: str) -> ServiceInstanceView:
        """The instance is alive: its TTL check passes. Raises ServiceInstanceNotFound."""
        return self._transport.heartbeat(instance_id)

    def deregister(self, instance_id: str) -> None:
        """Remove the instance. Raises ServiceInstanceNotFound."""
        self._transport.deregister(instance_id)

    def get(self, instance_id: str) -> ServiceInstanceView:
        """Raises ServiceInstanceNotFound."""
        return self._transport.instance(instance_id)

    def instances(self, name: str, *, healthy_only: bool = False) -> list[ServiceInstanceView]:
        """The instances of service ``name``; with ``healthy_only``, the passing ones."""
        status = ServiceStatus.PASSING.value if healthy_only else None
        return self._transport.instances(name, status=status)

    def pick(self, name: str) -> ServiceInstanceView:
        """One passing instance of service ``name``, at random, spreading the load.

        Raises:
            NoPassingInstance: none is passing (names the service).
        """
        return self._transport.pick(name)


class Approvals:
    """Steps held for a person's decision, as ``Client().approvals``. Listing and reading
    them is every role's; approving and rejecting the ``admin``'s (its tenant's runs) and
    the operator's. Decisions are recorded with ``by``: the client's ``identity`` unless
    given; over HTTP, the API key's (``key:<id>``), and ``by`` is refused.

    Over HTTP, :meth:`get` is :class:`~hive.errors.NotAvailableOverHttp`: the API lists
    approvals, and a run's steps (``Client.get``) hold their input."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def list(self, *, pipeline: str | None = None, limit: int = 100) -> list[ApprovalView]:
        """Pending approvals, oldest first, without their input (which may hold personal
        data: :meth:`get` has it)."""
        return self._transport.approvals(pipeline=pipeline, limit=limit)

    def get(self, run_id: uuid.UUID | str, step_id: str) -> ApprovalView:
        """The step's approval with its input and every request and decision.

        Raises:
            ApprovalNotFound: the step never asked (or is another tenant's).
        """
        return self._transport.approval(run_id, step_id)

    def approve(
        self,
        run_id: uuid.UUID | str,
        step_id: str,
        *,
        input: dict[str, Any] | None = None,
        by: str | None = None,
    ) -> ApprovalView:
        """Let the step run, with ``input`` in its place if given (checked against its
        agent's input model).

        Raises:
            ApprovalNotFound: the step is not awaiting approval (or is another tenant's).
            ApprovalError: someone decided it already (says who and when), or ``input``
                does not fit (names each field).
            PermissionDenied: the client's role may not decide approvals.
        """
        return self._transport.approve(run_id, step_id, input=input, by=by)

    def reject(
        self, run_id: uuid.UUID | str, step_id: str, *, reason: str, by: str | None = None
    ) -> ApprovalView:
        """Fail the step for good (a dead letter), and its run as any permanent failure does.

        Raises:
            ApprovalNotFound, ApprovalError, PermissionDenied: as :meth:`approve`.
        """
        return self._transport.reject(run_id, step_id, reason=reason, by=by)


class Budgets:
    """Tenants' daily cost budgets, as ``Client().budgets``. Reading them is the ``admin``'s
    (its own tenant's) and the operator's; setting and clearing them the operator's alone.
    A direct client's alone: the HTTP API has no budgets
    (:class:`~hive.errors.NotAvailableOverHttp`)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _direct(self, operation: str) -> DirectTransport:
        return direct(self._transport, operation)

    def list(self) -> list[BudgetView]:
        """Every tenant with a daily budget, or spending under one today (an admin: its own)."""
        d = self._direct("budgets.list")
        return service.list_budgets(d.settings, d.caller)

    def get(self, tenant: str) -> BudgetView:
        """``tenant``'s daily budget (``daily_usd`` None: none) and today's figures."""
        d = self._direct("budgets.get")
        return service.get_budget(d.settings, d.caller, tenant)

    def set(self, tenant: str, daily_usd: float) -> BudgetView:
        """Give ``tenant`` a budget of ``daily_usd`` per UTC day, replacing its current one.

        Raises:
            PermissionDenied: the client is not the operator.
            InvalidArgument: no tenant name, or not a finite amount above zero.
        """
        d = self._direct("budgets.set")
        return service.set_budget(d.settings, d.caller, tenant, daily_usd, by=d.identity)

    def clear(self, tenant: str) -> bool:
        """Lift ``tenant``'s daily budget; False when it had none."""
        d = self._direct("budgets.clear")
        return service.clear_budget(d.settings, d.caller, tenant, by=d.identity)
