"""Hive's exceptions.

::

    HiveError
    ├── SettingsError            a HIVE_* variable is malformed
    ├── DatabaseNotMigrated      the database has no Hive tables (run `hive db upgrade`)
    ├── PipelineError            a pipeline file is invalid (carries every problem)
    │   └── BrokenPipeline       the pipeline asked for is in a file that does not load
    ├── UnknownPipeline          no pipeline of that name
    ├── InputError               run input does not fit the pipeline's input_schema
    ├── InvalidArgument          a submit argument PostgreSQL cannot store (also a ValueError)
    ├── RunNotFound              also what a tenant-bound caller hears of another tenant's run
    ├── RunFailed                raised by Run.wait(): carries the failed step and its error
    ├── DispatchError            steps could not be published, and retrying will not help
    ├── PermissionDenied         the caller's role lacks the right (never about whose run it is)
    ├── AuthenticationFailed     no API key, or one that is unknown, wrong, expired or revoked
    ├── TooManyRequests          admission refused a call: the tenant's request rate is spent
    │   ├── TooManyRunsInFlight  ... or its runs in flight are at the cap
    │   └── TooManyServiceInstances  ... or its registered service instances are at the cap
    ├── ApiError                 the HTTP API answered what the client knows no error for
    ├── NotAvailableOverHttp     a Client(base_url=...) was asked what the HTTP API does not offer
    ├── ApiKeyNotFound           no API key with that id (that the caller may see)
    ├── ReplayError              the run cannot be replayed as asked
    ├── ServiceInstanceNotFound  no registered instance with that id (that the caller may see)
    ├── NoPassingInstance        pick(): no instance of the service is passing
    ├── ApprovalNotFound         no approval of that step (that the caller may see)
    ├── ApprovalError            decided already, or the edited input does not fit
    ├── ApprovalRequired         not a failure: the input guard holds the step for a person
    ├── StepDeferred             not a failure: the step waits (limit, open breaker) and comes back
    ├── BudgetExceeded           not a failure: the step would spend past a budget; the run stops
    ├── LimitsFileError          HIVE_LIMITS_FILE is invalid (carries every problem)
    ├── UnknownBreaker           no breaker of that name in the limits file
    ├── PermanentError           a step failing with it is never retried
    │   ├── BreakerOpen          a call's breaker is open and its policy says fail, not defer
    │   ├── InvalidAgentInput    the step's input does not fit the agent's input model
    │   ├── InvalidAgentOutput   the agent returned something that does not fit its output model
    │   ├── InputBlocked         the input guard refused the step's input (never quoting it)
    │   ├── MalformedReference   a string starts with $ but is not a reference
    │   ├── UnresolvedReference  a reference names a step output or path that is not there
    │   └── CredentialError      a credential a step names cannot be read (never shows its value)
    └── RetryableError           a step failing with it is retried (within max_retries)
        └── TransientError       a passing fault (network, rate limit)
            ├── ServiceUnavailable   PostgreSQL or Redis cannot be reached
            └── StatementCanceled    PostgreSQL, up, gave up on a statement (lock_timeout,
                                     statement_timeout, NOWAIT, a cancel): not an outage

Whether a failed step is retried follows from these classes alone
(:func:`hive.tasks.retry.is_retryable`); an exception outside both branches is retried.
Exceptions keep JSON-able constructor arguments so Celery can rebuild them.
"""

from __future__ import annotations

from typing import Any


class HiveError(Exception):
    """Root of every error Hive raises on purpose."""


class SettingsError(HiveError):
    """One or more ``HIVE_*`` variables are malformed. ``variable`` and ``problem`` name the
    first; ``problems`` holds every one as ``[variable, problem]`` pairs."""

    def __init__(
        self, variable: str, problem: str, problems: list[list[str]] | None = None
    ) -> None:
        super().__init__(variable, problem, problems)
        self.variable = variable
        self.problem = problem
        self.problems = problems or [[variable, problem]]

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> SettingsError:
        (variable, problem), *_ = problems
        return cls(variable, problem, [[v, p] for v, p in problems])

    def __str__(self) -> str:
        return "\n".join(f"{variable}: {problem}" for variable, problem in self.problems)


class DatabaseNotMigrated(HiveError):
    """The database ``HIVE_DATABASE_URL`` names is reachable but lacks Hive's schema: no
    Hive tables, or an older schema than this Hive's (``problem`` says which)."""

    def __init__(self, database: str, problem: str = "has no Hive tables") -> None:
        super().__init__(database, problem)
        self.database = database
        self.problem = problem

    def __str__(self) -> str:
        return (
            f"HIVE_DATABASE_URL: database {self.database!r} {self.problem}; "
            "run `hive db upgrade` first"
        )


class PipelineError(HiveError):
    """One or more problems in pipeline files; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class BrokenPipeline(PipelineError):
    """The pipeline ``name`` is in a file that does not load (the other pipelines do)."""

    def __init__(self, name: str, problems: list[str]) -> None:
        HiveError.__init__(self, name, problems)
        self.name = name
        self.problems = problems

    def __str__(self) -> str:
        return f"pipeline {self.name!r} cannot be loaded: {'; '.join(self.problems)}"


class UnknownPipeline(HiveError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name, known)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(sorted(self.known)) or "none"
        return f"unknown pipeline {self.name!r}; known pipelines: {known}"


class InputError(HiveError):
    """Run input that does not fit the pipeline's ``input_schema``."""

    def __init__(self, pipeline: str, problems: list[str]) -> None:
        super().__init__(pipeline, problems)
        self.pipeline = pipeline
        self.problems = problems

    def __str__(self) -> str:
        return f"invalid input for pipeline {self.pipeline!r}: " + "; ".join(self.problems)


class InvalidArgument(HiveError, ValueError):
    """Arguments of a call that Hive cannot take as given; ``problems`` names each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


class RunNotFound(HiveError):
    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id

    def __str__(self) -> str:
        return f"no run with id {self.run_id}"


class RunFailed(HiveError):
    """A run ended without success; names the failed step and its error."""

    def __init__(
        self, run_id: str, status: str, step_id: str | None, error: dict[str, Any] | None
    ) -> None:
        super().__init__(run_id, status, step_id, error)
        self.run_id = run_id
        self.status = status
        self.step_id = step_id
        self.error = error or {}

    def __str__(self) -> str:
        where = f" at step {self.step_id!r}" if self.step_id else ""
        detail = self.error.get("message", "")
        kind = self.error.get("type", "")
        return f"run {self.run_id} {self.status}{where}: {kind}: {detail}".rstrip(": ")


class DispatchError(HiveError):
    """Steps could not be published for a reason a broker outage does not explain (a bug,
    a queue name Redis holds something else under): they were failed and recorded rather
    than left to the recovery sweep, which would meet the same error on every sweep."""

    def __init__(self, run_id: str, step_ids: list[str], detail: str) -> None:
        super().__init__(run_id, step_ids, detail)
        self.run_id = run_id
        self.step_ids = step_ids
        self.detail = detail

    def __str__(self) -> str:
        noun = "step" if len(self.step_ids) == 1 else "steps"
        steps = ", ".join(repr(s) for s in self.step_ids)
        return f"run {self.run_id}: could not dispatch {noun} {steps}: {self.detail}"


class PermissionDenied(HiveError):
    """The caller's role does not carry the right the operation needs.

    Raised before any run is looked at, so it never tells whether a run exists: a run the
    caller's tenant cannot see is :class:`RunNotFound` instead.
    """

    def __init__(self, role: str, action: str) -> None:
        super().__init__(role, action)
        self.role = role
        self.action = action

    def __str__(self) -> str:
        return f"permission denied: role {self.role!r} may not {self.action}"


class AuthenticationFailed(HiveError):
    """The HTTP API's request carries no API key, or one that is malformed, unknown, wrong,
    expired or revoked. Which of these is never said, to the caller or in the message:
    telling them apart would help whoever guesses keys."""

    def __init__(self) -> None:
        super().__init__()

    def __str__(self) -> str:
        return "missing or invalid API key"


class TooManyRequests(HiveError):
    """Admission refused the call: the tenant's request rate (``HIVE_API_REQUESTS_PER_S``)
    is spent for now. ``retry_after_s`` says when the next call fits."""

    def __init__(
        self, retry_after_s: float, message: str = "", limit: int = 0, reset_s: int = 0
    ) -> None:
        super().__init__(retry_after_s, message, limit, reset_s)
        self.retry_after_s = max(float(retry_after_s), 0.0)
        self.message = message
        self.limit = limit
        """The rate's burst (``RateLimit-Limit``); 0 when no rate refused the call."""
        self.reset_s = reset_s
        """Seconds until the whole burst is back (``RateLimit-Reset``)."""

    def __str__(self) -> str:
        return self.message or (
            f"too many requests for this tenant; try again in {self.retry_after_s:.3g}s"
        )


class TenantAtCap(TooManyRequests):
    """A change refused because the tenant (None: no tenant) already has ``cap`` of what it
    would add; trying again helps once it has fewer."""

    def __init__(self, tenant: str | None, cap: int) -> None:
        super().__init__(1.0)
        self.args = (tenant, cap)
        self.tenant = tenant
        self.cap = cap


class TooManyRunsInFlight(TenantAtCap):
    """A submit refused because the tenant already has ``cap`` runs unfinished
    (``HIVE_API_MAX_RUNS_IN_FLIGHT``): it may submit again once some end."""

    def __str__(self) -> str:
        whose = f"tenant {self.tenant!r}" if self.tenant is not None else "runs of no tenant"
        return (
            f"{whose} has {self.cap} runs in flight, the most allowed "
            "(HIVE_API_MAX_RUNS_IN_FLIGHT); submit again once some have finished"
        )


class TooManyServiceInstances(TenantAtCap):
    """A registration refused because the tenant already has ``cap`` service instances
    registered (``HIVE_MAX_SERVICE_INSTANCES``): it may register another once it has
    deregistered some. A heartbeat or re-registration of an instance it has is never
    refused."""

    def __str__(self) -> str:
        whose = f"tenant {self.tenant!r}" if self.tenant is not None else "the farm (no tenant)"
        return (
            f"{whose} has {self.cap} service instances registered, the most allowed "
            "(HIVE_MAX_SERVICE_INSTANCES); deregister some before registering another"
        )


class ApiError(HiveError):
    """The HTTP API (or a proxy before it) answered with an error that is none of Hive's
    own: a 500 (the API logged it), a 404 of a path that is no route. ``status`` is the HTTP
    status, ``kind`` the body's ``type`` (empty when it had none)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(status, kind, message)
        self.status = status
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"the API answered {self.status}" + (f": {self.message}" if self.message else "")


class NotAvailableOverHttp(HiveError):
    """A client of the HTTP API (``Client(base_url=...)``) was asked for an operation the
    API does not offer; a direct ``Client()`` (or the ``hive`` command) has it."""

    def __init__(self, operation: str) -> None:
        super().__init__(operation)
        self.operation = operation

    def __str__(self) -> str:
        return (
            f"{self.operation} is not offered by the HTTP API; use a direct Client() "
            "(or the hive command) for it"
        )


class ApiKeyNotFound(HiveError):
    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id

    def __str__(self) -> str:
        return f"no API key with id {self.key_id!r}"


class ReplayError(HiveError):
    """The run cannot be replayed as asked."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(run_id, reason)
        self.run_id = run_id
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot replay run {self.run_id}: {self.reason}"


class ServiceInstanceNotFound(HiveError):
    """No registered service instance with that id; also what a tenant-bound caller hears
    of another tenant's instance."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id)
        self.instance_id = instance_id

    def __str__(self) -> str:
        return f"no service instance with id {self.instance_id!r}"


class NoPassingInstance(HiveError):
    """``pick(service)`` found no passing instance; ``counts`` holds how many instances the
    service has by status, so the message says whether it is down or unknown. ``shared``:
    only the instances shared by the operator were looked at (a step with credentials)."""

    def __init__(self, service: str, counts: dict[str, int], shared: bool = False) -> None:
        super().__init__(service, counts, shared)
        self.service = service
        self.counts = counts
        self.shared = shared

    def __str__(self) -> str:
        which = "shared instance" if self.shared else "instance"
        why = "; a step with credentials calls only shared ones" if self.shared else ""
        if not self.counts:
            return f"service {self.service!r} has no registered {which}{why}"
        held = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        return f"service {self.service!r} has no passing {which} ({held}){why}"


class PermanentError(HiveError):
    """The step cannot succeed: it is not retried. Agents raise it (or a subclass)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidAgentInput(PermanentError):
    """The step's resolved input does not fit the agent's input model."""


class InvalidAgentOutput(PermanentError):
    """The agent's result does not fit its output model."""


class InputBlocked(PermanentError):
    """The input guard blocked the step: its prompt scored as an injection. The message says
    so and gives the score and categories, never the text or the rule that matched."""


class MalformedReference(PermanentError):
    """A string starts with ``$`` but is not a reference (:mod:`hive.pipelines.refs`)."""

    def __init__(self, text: str, problem: str) -> None:
        HiveError.__init__(self, text, problem)  # the arguments Celery rebuilds it from
        self.text = text
        self.problem = problem
        self.message = f"malformed reference {text!r}: {problem}"


class UnresolvedReference(PermanentError):
    """A reference whose step output or path does not exist in the data."""

    def __init__(self, text: str, problem: str) -> None:
        HiveError.__init__(self, text, problem)
        self.text = text
        self.problem = problem
        self.message = f"cannot resolve {text}: {problem}"


class CredentialError(PermanentError):
    """The environment variable a step names for a credential is malformed, not allowed, or
    not set on this worker. ``variable`` is its name (None when the name is malformed: it
    may be the secret itself); the message never holds a value."""

    def __init__(self, variable: str | None, message: str) -> None:
        HiveError.__init__(self, variable, message)
        self.variable = variable
        self.message = message


class ApprovalNotFound(HiveError):
    """No approval of that step: none was asked, or the run is another tenant's."""

    def __init__(self, run_id: str, step_id: str) -> None:
        super().__init__(run_id, step_id)
        self.run_id = run_id
        self.step_id = step_id

    def __str__(self) -> str:
        return f"no approval of step {self.step_id!r} of run {self.run_id}"


class ApprovalError(HiveError):
    """The approval cannot be decided as asked: someone decided it already, or the edited
    input does not fit the agent (the message names each field)."""

    def __init__(self, run_id: str, step_id: str, reason: str) -> None:
        super().__init__(run_id, step_id, reason)
        self.run_id = run_id
        self.step_id = step_id
        self.reason = reason

    def __str__(self) -> str:
        return f"step {self.step_id!r} of run {self.run_id}: {self.reason}"


class ApprovalRequired(HiveError):
    """Raised in the step path by the input guard (``source`` ``input_guard``) or by a call
    whose breaker is open with ``on_open: escalate`` (``breaker``): the step is held for a
    person's decision (``awaiting_approval``) instead of running. ``reason`` never quotes
    the input; ``step_input`` is the input as screened (redacted), for the approver to read
    (None: the input the step task resolved)."""

    def __init__(self, reason: str, step_input: Any = None, source: str = "input_guard") -> None:
        super().__init__(reason, step_input, source)
        self.reason = reason
        self.step_input = step_input
        self.source = source

    def __str__(self) -> str:
        return self.reason


class StepDeferred(HiveError):
    """Not a failure: the step cannot start now (a rate or concurrency limit is reached, a
    breaker is open) and goes back to its queue for ``countdown_s`` seconds. It does not use
    up a retry and holds no worker slot while it waits. ``reason`` names what it waits for
    (``"rate limit service:partner"``); it is recorded as an event, never as an error.
    ``kind`` is the bounded label metrics count it under: ``rate_limit``, ``concurrency``,
    ``breaker``, or ``other`` (an agent's own)."""

    def __init__(self, reason: str, countdown_s: float, kind: str = "other") -> None:
        super().__init__(reason, countdown_s, kind)
        self.reason = reason
        self.countdown_s = max(float(countdown_s), 0.0)
        self.kind = kind

    def __str__(self) -> str:
        return f"deferred {self.countdown_s:.3g}s: {self.reason}"


class BudgetExceeded(HiveError):
    """Raised in the step path when a step's estimated cost does not fit a budget: the step
    does not start and its run ends ``budget_exceeded``. ``scope`` is ``run`` or
    ``tenant_daily``; the amounts are in the price table's currency (USD), and ``excess_usd``
    is by how much spent + reserved + the estimate would pass the limit."""

    def __init__(
        self,
        scope: str,
        limit_usd: float,
        spent_usd: float,
        reserved_usd: float,
        estimate_usd: float,
        tenant: str | None = None,
    ) -> None:
        super().__init__(scope, limit_usd, spent_usd, reserved_usd, estimate_usd, tenant)
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimate_usd = estimate_usd
        self.tenant = tenant

    @property
    def excess_usd(self) -> float:
        return round(self.spent_usd + self.reserved_usd + self.estimate_usd - self.limit_usd, 9)

    def detail(self) -> dict[str, Any]:
        """The figures, as the ``budget_exceeded`` event and the run's error hold them."""
        return {
            "budget": self.scope,
            "tenant": self.tenant,
            "limit_usd": self.limit_usd,
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "estimate_usd": self.estimate_usd,
            "excess_usd": self.excess_usd,
        }

    def __str__(self) -> str:
        whose = (
            "the run's budget"
            if self.scope == "run"
            else f"the daily budget of tenant {self.tenant!r}"
        )
        return (
            f"{whose} of {self.limit_usd:g} USD would be exceeded by {self.excess_usd:g} USD "
            f"(spent {self.spent_usd:g}, reserved {self.reserved_usd:g}, "
            f"this step's estimate {self.estimate_usd:g})"
        )


class LimitsFileError(HiveError):
    """Problems in the limits file (``HIVE_LIMITS_FILE``); ``problems`` holds one line each,
    every one naming the file and the key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class UnknownBreaker(HiveError):
    """No breaker of that name: the limits file declares none for it (nor a default)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name, known)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(sorted(self.known)) or "none"
        return (
            f"no breaker {self.name!r} (a breaker is declared under `breakers:` in "
            f"HIVE_LIMITS_FILE); known breakers: {known}"
        )


class BreakerOpen(PermanentError):
    """A call's breaker is open and its policy says ``on_open: fail``: the step fails at once
    rather than waiting. ``retry_in_s`` is how long the breaker stays open. ``breaker`` may
    name several, comma-separated (an llm step's fallbacks, each one's open)."""

    def __init__(self, breaker: str, retry_in_s: float) -> None:
        HiveError.__init__(self, breaker, retry_in_s)
        self.breaker = breaker
        self.retry_in_s = retry_in_s
        which = f"breakers {breaker} are" if ", " in breaker else f"breaker {breaker} is"
        self.message = f"{which} open for {retry_in_s:.3g}s more (on_open: fail)"


class RetryableError(HiveError):
    """The step may succeed if tried again: it is retried within its max_retries.

    ``retry_after_s``, when given (an HTTP ``Retry-After``), is the retry's countdown in
    place of the step's backoff."""

    def __init__(self, message: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message, retry_after_s)
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class TransientError(RetryableError):
    """A passing fault (network, rate limit): retried."""


class ServiceUnavailable(TransientError):
    """A server Hive needs cannot be reached; names the setting that points at it.

    ``retry_after_s`` is the server's own hint when it gave one (an HTTP API's
    ``Retry-After``), else None, as on every :class:`RetryableError`."""

    def __init__(self, variable: str, detail: str, retry_after_s: float | None = None) -> None:
        HiveError.__init__(self, variable, detail, retry_after_s)
        self.variable = variable
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.message = f"cannot reach the server at {variable}: {detail}"


class StatementCanceled(TransientError):
    """PostgreSQL, up and answering, gave up on a statement: it waited for a lock longer
    than ``lock_timeout`` or found it held under ``NOWAIT`` (SQLSTATE 55P03), ran longer
    than ``statement_timeout``, or was cancelled (``pg_cancel_backend``, 57014). Not an
    outage: never waited out for ``HIVE_DB_RETRY_S``. ``setting`` names the server setting
    that cancelled it (``lock_timeout``, ``statement_timeout``), None when it was none
    (``NOWAIT``, a cancel) or PostgreSQL's message did not say; ``detail`` is that message."""

    def __init__(self, setting: str | None, detail: str) -> None:
        HiveError.__init__(self, setting, detail)
        self.setting = setting
        self.detail = detail
        self.retry_after_s = None
        # Hive sets neither setting: a DBA did, for its role or database (or the server).
        past = f" past its {setting} (SHOW {setting}; set for Hive's role or database)"
        self.message = (
            f"the database is up but gave up on a statement{past if setting else ''}: {detail}"
        )
