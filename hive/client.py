"""The producer API: submit runs, look at them, wait for them.

>>> from hive import Client
>>> run = Client().submit("doc-triage", {"text": "Call me at 415-555-0100"})
>>> run.wait(timeout=30)

``Client(tenant="acme")`` acts for one tenant: its runs are submitted for that tenant and
it sees no other tenant's run. ``Client()`` is the operator, across every tenant. Every
call goes through :mod:`hive.service`, where the tenant and the role are enforced.
"""

from __future__ import annotations

import getpass
import uuid
from datetime import datetime
from typing import Any

from hive import service
from hive.pipelines import Pipeline
from hive.service import (
    ApprovalView,
    BudgetView,
    Caller,
    Role,
    RunState,
    RunView,
    ServiceInstanceView,
    StepView,
    UsageView,
    WorkerView,
)
from hive.settings import Settings, get_settings
from hive.statuses import ServiceStatus

__all__ = [
    "ApprovalView",
    "Approvals",
    "BudgetView",
    "Budgets",
    "Client",
    "Run",
    "RunView",
    "ServiceInstanceView",
    "Services",
    "StepView",
    "UsageView",
    "WorkerView",
]


class Run:
    """A handle on a submitted run."""

    def __init__(self, client: Client, run_id: uuid.UUID) -> None:
        self._client = client
        self.id = run_id

    def __repr__(self) -> str:
        return f"<Run {self.id}>"

    def status(self) -> str:
        return str(self._client.run_row(self.id).status)

    def view(self) -> RunView:
        return self._client.get(self.id)

    def wait(self, timeout: float | None = None, poll_s: float = 0.02) -> Any:
        """Block until the run ends and return its output.

        Raises:
            RunFailed: the run ended failed, cancelled, expired or budget_exceeded; names the
                failed step.
            TimeoutError: ``timeout`` seconds passed first.
        """
        client = self._client
        return service.wait_for_run(
            client.settings, client.caller, self.id, timeout=timeout, poll_s=poll_s
        )


class Services:
    """The service registry, as ``Client().services``: the services agents call and their
    instances' health. Registering, heartbeating and deregistering take the ``admin`` or
    ``operator`` role; a tenant-bound client sees its tenant's instances alone."""

    def __init__(self, client: Client) -> None:
        self._client = client

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
        """
        c = self._client
        return service.register_service(
            c.settings, c.caller, name, url, health_url=health_url, ttl_s=ttl_s,
            deregister_after_s=deregister_after_s, meta=meta, instance_id=instance_id,
        )  # fmt: skip

    def heartbeat(self, instance_id: str) -> ServiceInstanceView:
        """The instance is alive: its TTL check passes. Raises ServiceInstanceNotFound."""
        return service.heartbeat_service(self._client.settings, self._client.caller, instance_id)

    def deregister(self, instance_id: str) -> None:
        """Remove the instance. Raises ServiceInstanceNotFound."""
        service.deregister_service(self._client.settings, self._client.caller, instance_id)

    def get(self, instance_id: str) -> ServiceInstanceView:
        """Raises ServiceInstanceNotFound."""
        return service.get_service_instance(self._client.settings, self._client.caller, instance_id)

    def instances(self, name: str, *, healthy_only: bool = False) -> list[ServiceInstanceView]:
        """The instances of service ``name``; with ``healthy_only``, the passing ones."""
        status = ServiceStatus.PASSING if healthy_only else None
        return service.list_service_instances(
            self._client.settings, self._client.caller, name=name, status=status
        )

    def pick(self, name: str) -> ServiceInstanceView:
        """One passing instance of service ``name``, at random, spreading the load.

        Raises:
            NoPassingInstance: none is passing (names the service).
        """
        return service.pick_instance(self._client.settings, self._client.caller, name)


class Approvals:
    """Steps held for a person's decision, as ``Client().approvals``. Listing and reading
    them is every role's; approving and rejecting the ``admin``'s (its tenant's runs) and
    the operator's. Decisions are recorded with ``by``: the client's ``identity`` unless
    given."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, *, pipeline: str | None = None, limit: int = 100) -> list[ApprovalView]:
        """Pending approvals, oldest first, without their input (which may hold personal
        data: :meth:`get` has it)."""
        c = self._client
        return service.list_approvals(c.settings, c.caller, pipeline=pipeline, limit=limit)

    def get(self, run_id: uuid.UUID | str, step_id: str) -> ApprovalView:
        """The step's approval with its input and every request and decision.

        Raises:
            ApprovalNotFound: the step never asked (or is another tenant's).
        """
        return service.get_approval(self._client.settings, self._client.caller, run_id, step_id)

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
        c = self._client
        return service.approve(
            c.settings, c.caller, run_id, step_id, by=by or c.identity, new_input=input
        )

    def reject(
        self, run_id: uuid.UUID | str, step_id: str, *, reason: str, by: str | None = None
    ) -> ApprovalView:
        """Fail the step for good (a dead letter), and its run as any permanent failure does.

        Raises:
            ApprovalNotFound, ApprovalError, PermissionDenied: as :meth:`approve`.
        """
        c = self._client
        return service.reject(c.settings, c.caller, run_id, step_id, reason=reason,
                              by=by or c.identity)  # fmt: skip


class Budgets:
    """Tenants' daily cost budgets, as ``Client().budgets``. Reading them is the ``admin``'s
    (its own tenant's) and the operator's; setting and clearing them the operator's alone."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[BudgetView]:
        """Every tenant with a daily budget, or spending under one today (an admin: its own)."""
        c = self._client
        return service.list_budgets(c.settings, c.caller)

    def get(self, tenant: str) -> BudgetView:
        """``tenant``'s daily budget (``daily_usd`` None: none) and today's figures."""
        c = self._client
        return service.get_budget(c.settings, c.caller, tenant)

    def set(self, tenant: str, daily_usd: float) -> BudgetView:
        """Give ``tenant`` a budget of ``daily_usd`` per UTC day, replacing its current one.

        Raises:
            PermissionDenied: the client is not the operator.
            InvalidArgument: no tenant name, or not a finite amount above zero.
        """
        c = self._client
        return service.set_budget(c.settings, c.caller, tenant, daily_usd, by=c.identity)

    def clear(self, tenant: str) -> bool:
        """Lift ``tenant``'s daily budget; False when it had none."""
        c = self._client
        return service.clear_budget(c.settings, c.caller, tenant, by=c.identity)


class Client:
    """Submit and inspect runs. Reads settings from the environment unless given.

    Args:
        settings: Hive's settings (default: from the environment). They may choose the
            pipelines folder and the input bounds; the servers must be the process's own
            (one farm per process, as with Celery's app).
        tenant: act for this tenant alone; None acts for every tenant (the operator).
        role: the caller's role (:class:`hive.service.Role`); default ``producer`` for a
            tenant, ``operator`` without one.
        identity: who decides approvals made through this client (``by``); default the
            operating system's user name.

    Raises:
        InvalidArgument: a tenant no run could be stored under: empty, longer than 200
            characters, or holding a NUL character (also a ValueError).
        SettingsError: ``settings`` name another database, broker or key prefix than the
            process's own settings (names the variable).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tenant: str | None = None,
        role: Role | str | None = None,
        identity: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        service.check_farm(self.settings)
        self.caller = Caller.for_tenant(tenant, role)
        self.identity = identity or getpass.getuser()
        self.services = Services(self)
        self.approvals = Approvals(self)
        self.budgets = Budgets(self)

    @property
    def tenant(self) -> str | None:
        return self.caller.tenant

    def pipelines(self) -> dict[str, Pipeline]:
        return service.list_pipelines(self.settings, self.caller)

    def pipeline(self, name: str) -> Pipeline:
        return service.get_pipeline(self.settings, self.caller, name)

    def submit(
        self,
        pipeline: str,
        input: Any,
        *,
        tenant: str | None = None,
        priority: str = "normal",
        idempotency_key: str | None = None,
        deadline: float | None = None,
        budget_usd: float | None = None,
    ) -> Run:
        """Validate ``input`` against the pipeline's input_schema, store the run and its steps
        in one transaction, then send its first steps.

        Args:
            pipeline: the pipeline's name.
            input: the run input, checked against the pipeline's ``input_schema``.
            tenant: who the run belongs to (a tenant-bound client: its own tenant).
            priority: ``low``, ``normal``, ``high`` or ``critical``.
            idempotency_key: the same key and tenant always give back the same run.
            deadline: seconds; a run not finished by then ends ``expired``.
            budget_usd: the run's cost budget in USD, in place of its pipeline's
                ``budget_usd``: an LLM step whose estimated cost would pass it does not
                start, and the run ends ``budget_exceeded``.

        Raises:
            UnknownPipeline: no pipeline of that name (lists the known ones).
            InputError: the input does not fit, or is nested too deep or too large (see
                ``HIVE_MAX_INPUT_DEPTH`` and ``HIVE_MAX_INPUT_BYTES``); names each field.
                Nothing is stored or sent.
            InvalidArgument: ``tenant`` empty, ``tenant`` or ``idempotency_key`` longer than
                200 characters or holding a NUL character, or a ``deadline`` that is not a
                finite positive number of seconds, or a ``budget_usd`` that is not a finite
                positive amount (also a ValueError).
            PermissionDenied: the client's role may not submit, or not for ``tenant``.
            ValueError: an unknown priority.
            ServiceUnavailable: PostgreSQL cannot be reached.
        """
        submitted = service.submit(
            self.settings,
            self.caller,
            pipeline,
            input,
            tenant=tenant,
            priority=priority,
            idempotency_key=idempotency_key,
            deadline=deadline,
            budget_usd=budget_usd,
        )
        return Run(self, submitted.run_id)

    def get(self, run_id: uuid.UUID | str) -> RunView:
        """A snapshot of the run and its steps.

        Raises:
            RunNotFound: no run with that id (that this client's tenant may see).
            InvalidArgument: ``run_id`` is neither a UUID nor text.
        """
        return service.get_run(self.settings, self.caller, run_id)

    def run_row(self, run_id: uuid.UUID | str) -> RunState:
        """The run's status, output and error, without its steps.

        Raises:
            RunNotFound: no run with that id (that this client's tenant may see).
        """
        return service.get_run_state(self.settings, self.caller, run_id)

    def cancel(self, run_id: uuid.UUID | str) -> bool:
        """Cancel a run: no new step starts, running steps are revoked, unfinished steps and
        the run end ``cancelled``. False if the run had already ended.

        Raises:
            RunNotFound: no run with that id (that this client's tenant may see).
        """
        return service.cancel_run(self.settings, self.caller, run_id)

    def run(self, run_id: uuid.UUID | str) -> Run:
        return Run(self, service.parse_run_id(run_id))

    def workers(self, *, state: str | None = None) -> list[WorkerView]:
        """The workers in the registry by name, or those in ``state`` (``online``,
        ``offline`` after a clean stop, ``lost`` when they stopped heartbeating).

        Raises:
            PermissionDenied: the client is not the operator (a tenant-bound client).
            InvalidArgument: ``state`` is not a worker state.
        """
        return service.list_workers(self.settings, self.caller, state=state)

    def usage(self, *, tenant: str | None = None, since: datetime | None = None) -> list[UsageView]:
        """Tokens, calls and cost of the runs created since ``since`` (all time when None),
        one view per tenant: every tenant for the operator (or ``tenant``), its own for a
        tenant's admin.

        Raises:
            PermissionDenied: the client is neither an admin nor the operator.
            InvalidArgument: ``tenant`` is no tenant name, or ``since`` is not a datetime.
        """
        return service.usage_by_tenant(self.settings, self.caller, tenant=tenant, since=since)

    def list(
        self, *, status: str | None = None, pipeline: str | None = None, limit: int = 20
    ) -> list[RunView]:
        """This client's runs (every run, without a tenant), newest first, without their
        steps (``steps`` is None: :meth:`get` reads them).

        Raises:
            InvalidArgument: ``limit`` is not from 1 to 10,000, or ``status`` is not a run
                status.
        """
        return service.list_runs(
            self.settings, self.caller, status=status, pipeline=pipeline, limit=limit
        )
