"""The producer's :class:`Client` and its :class:`Run` handle, over either transport.

``Client(tenant="acme")`` calls the service layer in this process (PostgreSQL and Redis
reached directly); ``Client(base_url=..., api_key=...)`` calls the HTTP API. Every method
returns the same views and raises the same errors either way, so moving between them is a
change of constructor.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from types import TracebackType
from typing import Any

from hive import service
from hive.client.areas import Approvals, Budgets, Services, direct
from hive.client.direct import DirectTransport
from hive.client.http import HttpTransport
from hive.client.transport import RunId, Transport
from hive.errors import InvalidArgument
from hive.service import (
    Caller,
    DeadLetterView,
    PipelineView,
    Role,
    RunPage,
    RunState,
    RunView,
    UsageView,
    WorkerView,
)
from hive.service.arguments import check_listing, parse_run_id
from hive.settings import Settings

PAGE_MAX = 1000
"""The most runs one page holds over HTTP (``GET /v1/runs``): longer listings take pages."""


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
        """Block until the run ends and return its output. Over HTTP, long polls of at most
        a minute each (the API's bound) until then; ``poll_s`` is the direct client's.

        Raises:
            RunFailed: the run ended failed, cancelled, expired or budget_exceeded; names the
                failed step.
            TimeoutError: ``timeout`` seconds passed first.
        """
        return self._client._transport.wait(self.id, timeout, poll_s)


class Client:
    """Submit and inspect runs, directly or over the HTTP API.

    Args:
        settings: Hive's settings (default: from the environment). They may choose the
            pipelines folder and the input bounds; the servers must be the process's own
            (one farm per process, as with Celery's app).
        tenant: act for this tenant alone; None acts for every tenant (the operator).
        role: the caller's role (:class:`hive.service.Role`); default ``producer`` for a
            tenant, ``operator`` without one.
        identity: who decides approvals made through this client (``by``); default the
            operating system's user name.
        base_url: the HTTP API's address (``http://hive-api:8000``): call it instead of the
            farm's servers. The key's tenant and role are the client's: ``settings``,
            ``tenant``, ``role`` and ``identity`` are refused with it.
        api_key: the key (``hive keys create``) that goes with ``base_url``; it appears in no
            repr, log record or exception.
        timeout_s: over HTTP, how long one request may take (default 30).

    A client of the HTTP API holds a keep-alive connection pool: ``close()`` it, or use it
    as a context manager.

    Raises:
        InvalidArgument: a tenant no run could be stored under: empty, longer than 200
            characters, or holding a NUL character (also a ValueError); a ``base_url``
            without an ``api_key``, or the other way round, or with a direct argument.
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
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self._transport: Transport
        if base_url is None and api_key is None:
            if timeout_s is not None:
                raise InvalidArgument(["timeout_s is for a client of the HTTP API (base_url)"])
            self._transport = DirectTransport(settings, tenant, role, identity)
        else:
            direct_only = {"settings": settings, "tenant": tenant, "role": role,
                           "identity": identity}  # fmt: skip
            problems = [
                f"{name}: a client of the HTTP API acts as its API key; leave {name} out"
                for name, value in direct_only.items()
                if value is not None
            ]
            if base_url is None:
                problems.append("base_url is needed with api_key")
            if api_key is None:
                problems.append("api_key is needed with base_url")
            if problems:
                raise InvalidArgument(problems)
            assert base_url is not None and api_key is not None
            timeout = 30.0 if timeout_s is None else timeout_s
            self._transport = HttpTransport(base_url, api_key, timeout_s=timeout)
        self.services = Services(self._transport)
        self.approvals = Approvals(self._transport)
        self.budgets = Budgets(self._transport)

    def __repr__(self) -> str:
        return f"<Client {self._transport!r}>"

    def close(self) -> None:
        """Release the HTTP client's connections (nothing for a direct client)."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def settings(self) -> Settings:
        """A direct client's settings. Raises NotAvailableOverHttp."""
        return direct(self._transport, "settings").settings

    @property
    def caller(self) -> Caller:
        """A direct client's caller (tenant and role). Raises NotAvailableOverHttp."""
        return direct(self._transport, "caller").caller

    @property
    def identity(self) -> str:
        """Who a direct client's approvals are decided by. Raises NotAvailableOverHttp."""
        return direct(self._transport, "identity").identity

    @property
    def tenant(self) -> str | None:
        """A direct client's tenant; None for the operator, and over HTTP (the key's tenant
        is the API's to know)."""
        transport = self._transport
        return transport.caller.tenant if isinstance(transport, DirectTransport) else None

    def pipelines(self) -> dict[str, PipelineView]:
        """Every pipeline by name, with its input JSON Schema and steps."""
        return self._transport.pipelines()

    def pipeline(self, name: str) -> PipelineView:
        """Raises UnknownPipeline (lists the known ones)."""
        return self._transport.pipeline(name)

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
            idempotency_key: the same key and tenant always give back the same run. Over
                HTTP a submit whose answer is lost is sent once more with it (one is made
                when none is given), so it never makes a second run.
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
                positive amount, or (over HTTP) an unknown priority (also a ValueError).
            PermissionDenied: the client's role may not submit, or not for ``tenant``.
            TooManyRequests: over HTTP, the tenant's request rate is spent
                (``retry_after_s``), or its runs in flight are at the cap
                (``TooManyRunsInFlight``).
            ValueError: an unknown priority.
            ServiceUnavailable: PostgreSQL (over HTTP: the API) cannot be reached.
        """
        run_id = self._transport.submit(
            pipeline, input, tenant=tenant, priority=priority, idempotency_key=idempotency_key,
            deadline=deadline, budget_usd=budget_usd,
        )  # fmt: skip
        return Run(self, run_id)

    def get(self, run_id: RunId) -> RunView:
        """A snapshot of the run and its steps.

        Raises:
            RunNotFound: no run with that id (that this client's tenant may see).
            InvalidArgument: ``run_id`` is neither a UUID nor text.
        """
        return self._transport.get(run_id)

    def run_row(self, run_id: RunId) -> RunState:
        """The run's status, output and error, without its steps.

        Raises:
            RunNotFound: no run with that id (that this client's tenant may see).
        """
        return self._transport.state(run_id)

    def cancel(self, run_id: RunId) -> bool:
        """Cancel a run: no new step starts, running steps are revoked, unfinished steps and
        the run end ``cancelled``. False if the run had already ended, or had no step
        left to stop (it is closing with its steps' outcome).

        Raises:
            RunNotFound: no run with that id (that this client's tenant may see).
        """
        return self._transport.cancel(run_id)

    def run(self, run_id: RunId) -> Run:
        return Run(self, parse_run_id(run_id))

    def list_page(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> RunPage:
        """One page of :meth:`list`: pass its ``next_cursor`` as ``cursor`` (with the same
        filters) for the next; runs submitted meanwhile never shift a page. Over HTTP a page
        holds at most 1,000 runs.

        Raises:
            InvalidArgument: as :meth:`list`, or a cursor no listing returned.
        """
        return self._transport.list_page(
            status=status, pipeline=pipeline, limit=limit, cursor=cursor,
            created_after=created_after, created_before=created_before,
        )  # fmt: skip

    def dead_letters(
        self, *, pipeline: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[DeadLetterView]:
        """Steps that failed for good and are not replayed yet, newest first."""
        return self._transport.dead_letters(pipeline=pipeline, since=since, limit=limit)

    def replay(
        self, run_id: RunId, input: dict[str, Any] | None = None, *, deadline: float | None = None
    ) -> list[str]:
        """Reopen a failed run: its failed steps get fresh retries (the one failed step with
        ``input`` instead, when given); the steps sent again.

        Args:
            run_id: the failed run.
            input: an edited input for its one failed step.
            deadline: seconds from now, the run's new deadline (as :meth:`submit`'s);
                without it the run keeps its own, and a run past it is not replayed.

        Raises:
            RunNotFound, PermissionDenied (an admin's right).
            ReplayError: the run is not failed, it is past its deadline and no
                ``deadline`` is given, or ``input`` does not fit.
            InvalidArgument: a ``deadline`` that is not a finite positive number of
                seconds, at most ten years.
        """
        return self._transport.replay(run_id, input, deadline)

    def workers(self, *, state: str | None = None) -> list[WorkerView]:
        """The workers in the registry by name, or those in ``state`` (``online``,
        ``offline`` after a clean stop, ``lost`` when they stopped heartbeating).

        Raises:
            PermissionDenied: the client is not the operator (a tenant-bound client).
            InvalidArgument: ``state`` is not a worker state.
            NotAvailableOverHttp: a client of the HTTP API.
        """
        d = direct(self._transport, "workers")
        return service.list_workers(d.settings, d.caller, state=state)

    def usage(self, *, tenant: str | None = None, since: datetime | None = None) -> list[UsageView]:
        """Tokens, calls and cost of the runs created since ``since`` (all time when None),
        one view per tenant: every tenant for the operator (or ``tenant``), its own for a
        tenant's admin.

        Raises:
            PermissionDenied: the client is neither an admin nor the operator.
            InvalidArgument: ``tenant`` is no tenant name, or ``since`` is not a datetime.
            NotAvailableOverHttp: a client of the HTTP API.
        """
        d = direct(self._transport, "usage")
        return service.usage_by_tenant(d.settings, d.caller, tenant=tenant, since=since)

    def list(
        self,
        *,
        status: str | None = None,
        pipeline: str | None = None,
        limit: int = 20,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[RunView]:
        """This client's runs (every run, without a tenant), newest first, without their
        steps (``steps`` is None: :meth:`get` reads them); created from ``created_after``
        (inclusive) to before ``created_before`` when given (datetimes with a zone).

        Raises:
            InvalidArgument: ``limit`` is not from 1 to 10,000, ``status`` is not a run
                status, or a creation bound is not a datetime with a time zone.
        """
        check_listing(limit=limit, pipeline=pipeline, status=status)
        runs: list[RunView] = []
        cursor = None
        while True:
            page = self.list_page(
                status=status, pipeline=pipeline, limit=min(limit - len(runs), PAGE_MAX),
                cursor=cursor, created_after=created_after, created_before=created_before,
            )  # fmt: skip
            runs += page.runs
            if page.next_cursor is None or len(runs) >= limit:
                return runs
            cursor = page.next_cursor
