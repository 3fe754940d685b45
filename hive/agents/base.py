"""The Agent contract: a named, versioned function from a validated input to a validated output.

Agents know nothing of Celery or the database. Retries, timeouts, limits and
persistence are the farm's job; an agent raises :class:`~hive.errors.RetryableError`
or :class:`~hive.errors.PermanentError` to say how a failure should be treated.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from hive.agents.governance import (
    MAX_APPROVAL_TIMEOUT_S,
    InputGuardOptions,
    TimeoutAction,
    duration_s,
    guard_options,
)
from hive.errors import InvalidAgentInput, InvalidAgentOutput
from hive.jsondata import unstorable
from hive.keys import DEFAULT_QUEUE

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)


class AgentOptions(BaseModel):
    """How the farm runs an agent's steps; a pipeline step may override any of them."""

    # An infinite timeout or backoff cannot be stored as JSON nor given to Celery.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    queue: str = DEFAULT_QUEUE
    timeout: float = Field(default=300.0, gt=0, description="seconds before the step times out")
    max_retries: int = Field(default=3, ge=0)
    retry_backoff: float = Field(default=1.0, ge=0, description="first retry delay, seconds")
    retry_backoff_max: float = Field(default=300.0, ge=0, description="cap on the retry delay")
    retry_jitter: bool = True
    # Governance (hive/agents/governance.py): a person's approval, the input guard.
    approval: Literal["required"] | None = Field(
        default=None, description="required: the step waits for a person to approve it"
    )
    approval_timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_APPROVAL_TIMEOUT_S,
        description="seconds (or 30m, 2h, 7d) an approval may wait before "
        "approval_timeout_action decides it; none: it waits",
    )
    approval_timeout_action: TimeoutAction = "reject"
    input_guard: InputGuardOptions | None = Field(
        default=None, description="PII redaction and injection screening before the agent runs"
    )

    @field_validator("approval_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_s(value)

    @field_validator("input_guard", mode="before")
    @classmethod
    def _guard_off(cls, value: Any) -> Any:
        return guard_options(value)

    @field_validator("queue")
    @classmethod
    def _queue_is_a_name(cls, queue: str) -> str:
        # `hive worker --queues` takes a comma-separated list: no commas, no blanks.
        if not queue or any(char == "," or char.isspace() for char in queue):
            raise PydanticCustomError(
                "queue_name", "a queue name must be non-empty, without commas or whitespace"
            )
        return queue


@dataclass(frozen=True)
class Resource:
    """Something outside the farm that a step uses; the farm's limits and breakers key on it.

    ``kind`` is ``"service"`` (a name in the service registry, or a host for a bare URL) or
    ``"model"`` (``name`` is ``"<provider>:<model>"``). ``tokens`` is an LLM call's estimate
    of the tokens it will use, for tokens-per-minute limits; corrected after the call with
    :meth:`CallTicket.used_tokens`.
    """

    kind: Literal["service", "model"]
    name: str
    tokens: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class CallTicket(Protocol):
    """What :meth:`AgentContext.call` yields for one outside call."""

    def used_tokens(self, tokens: int) -> None:
        """The call's real token count, to correct the estimate taken before it."""

    def failed(self) -> None:
        """Count this call as a failure for the resource's breaker without raising (an agent
        that handles the error itself, e.g. by trying a fallback). An exception leaving the
        ``with`` block counts as a failure by itself."""


class CallGuard(Protocol):
    """The farm's admission for outside calls (rate and concurrency limits, breakers)."""

    def __call__(self, resource: Resource) -> contextlib.AbstractContextManager[CallTicket]:
        """Admit one call to ``resource`` for the ``with`` block, or raise
        :class:`~hive.errors.StepDeferred` (a limit is reached or the breaker is open: the
        step comes back later, without using up a retry); for a breaker open with
        ``on_open: fail``, :class:`~hive.errors.BreakerOpen`, with ``on_open: escalate``,
        :class:`~hive.errors.ApprovalRequired` (the step is held for a person). An agent
        lets them go up, unless it has another resource to try (the ``llm`` agent's
        fallbacks)."""
        ...


class ServiceLookup(Protocol):
    """Resolves a service name through the registry to one passing instance's address."""

    def pick(self, service: str, exclude: Sequence[str] = (), *, shared_only: bool = False) -> str:
        """The address URL of a passing instance of ``service``, not one of ``exclude``
        (addresses already tried); with ``shared_only``, one the operator shares, never the
        run's tenant's own (an agent sending a credential from the worker's environment
        asks for that). Raises :class:`~hive.errors.NoPassingInstance`."""
        ...


class _Unguarded:
    """Outside the farm (an agent run by hand, a unit test): every call is admitted."""

    def used_tokens(self, tokens: int) -> None:
        return None

    def failed(self) -> None:
        return None


@contextlib.contextmanager
def unguarded(resource: Resource) -> Iterator[CallTicket]:
    """The :class:`CallGuard` of an agent run outside the farm: admits every call."""
    yield _Unguarded()


@dataclass
class AgentContext:
    """What an agent may know about the step it runs in."""

    run_id: str
    step_id: str
    attempt: int
    tenant: str | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("hive.agent"))
    upstream: dict[str, Any] = field(default_factory=dict)
    """Outputs of the step's direct ``needs``, keyed by step id (used by ``merge``)."""
    is_cancelled: Callable[[], bool] = lambda: False
    usage: dict[str, float] = field(default_factory=dict)
    pipeline: str | None = None
    trace_id: str | None = None
    """The run's W3C trace id (32 hex digits): an agent calling out passes it on, e.g. as
    ``traceparent: 00-<trace_id>-<a span id of its own>-01``. None for a run stored before
    runs had one."""
    call: CallGuard = unguarded
    """Wrap every outside call: ``with ctx.call(Resource("service", "partner")) as ticket:``.
    In the farm it holds the fleet-wide rate and concurrency limits and the breakers."""
    services: ServiceLookup | None = None
    """The service registry (``ctx.services.pick(name)``); None outside the farm."""

    def report_usage(self, **amounts: float) -> None:
        """Add to the step's usage counters (tokens, cost, calls...)."""
        for key, value in amounts.items():
            self.usage[key] = self.usage.get(key, 0.0) + value


class Agent(Generic[InputT, OutputT]):
    """Base class of every agent.

    Subclasses set ``name``, ``version``, ``input_model``, ``output_model`` and
    optionally ``options``, and implement :meth:`run`.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    options: ClassVar[AgentOptions] = AgentOptions()

    @classmethod
    def pinned_fields(cls, template: Mapping[str, Any]) -> dict[str, str]:
        """Input fields a step must write in its pipeline file: no ``$input`` or ``$steps``
        reference anywhere inside them. Each maps to why, to complete the load error
        "must be written in the pipeline, not taken from a reference: <why>".

        The pipeline is the trust boundary: operators deploy pipelines, producers only
        submit runs. A field that decides where a worker's credential goes, or that labels
        metrics and keys the farm's limits (which must stay a bounded set), cannot be left
        to a run's input or to what an earlier step answered. The loader checks this for
        every step, and an edited input (a replay's) may not change these fields either
        (:func:`hive.pipelines.checks.pinned_changes`); at run time the resolved input no
        longer shows what was a reference, so those are the guarantee.

        Args:
            template: the step's ``input`` as the pipeline writes it (keys as written), so
                that what is pinned may depend on it (``http`` pins its address only when
                it sends a credential).

        Returns:
            Field name → why; empty by default.
        """
        return {}

    def run(self, data: InputT, ctx: AgentContext) -> OutputT:
        """Do the agent's work.

        Args:
            data: the step's input, validated against ``input_model``.
            ctx: the run and step this call belongs to.

        Returns:
            An instance of ``output_model``.
        """
        raise NotImplementedError

    def estimate_cost(self, raw_input: dict[str, Any]) -> float | None:
        """What one attempt of a step with ``raw_input`` may cost at most, in the price
        table's currency (USD). The farm reserves it against the run's and the tenant's
        budgets before the step runs, and settles what the attempt reports as its
        ``cost`` usage after it. None (the default): the step costs nothing to reserve.
        An input that does not validate estimates None; :meth:`execute` refuses it."""
        return None

    def execute(self, raw_input: dict[str, Any], ctx: AgentContext) -> dict[str, Any]:
        """Validate ``raw_input``, run, and validate the output; returns it as JSON-able data."""
        try:
            data = self.input_model.model_validate(raw_input)
        except ValidationError as exc:
            raise InvalidAgentInput(_describe(exc, "input")) from exc
        result = self.run(data, ctx)  # type: ignore[arg-type]
        try:
            output = self.output_model.model_validate(
                result.model_dump() if isinstance(result, BaseModel) else result
            )
        except ValidationError as exc:
            raise InvalidAgentOutput(_describe(exc, "output")) from exc
        dumped: dict[str, Any] = output.model_dump(mode="json")
        unfit = unstorable(dumped, "output")
        if unfit:
            raise InvalidAgentOutput("; ".join(unfit))
        return dumped


def _describe(exc: ValidationError, where: str) -> str:
    """One line per problem, each naming the field: ``input.top: Input should be ...``."""
    return "; ".join(
        f"{'.'.join([where, *(str(p) for p in e['loc'])])}: {e['msg']}" for e in exc.errors()
    )
