"""The Agent contract: a named, versioned function from a validated input to a validated output.

Agents know nothing of Celery or the database. Retries, timeouts, limits and
persistence are the farm's job; an agent raises :class:`~hive.errors.RetryableError`
or :class:`~hive.errors.PermanentError` to say how a failure should be treated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

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

    @field_validator("queue")
    @classmethod
    def _queue_is_a_name(cls, queue: str) -> str:
        # `hive worker --queues` takes a comma-separated list: no commas, no blanks.
        if not queue or any(char == "," or char.isspace() for char in queue):
            raise PydanticCustomError(
                "queue_name", "a queue name must be non-empty, without commas or whitespace"
            )
        return queue


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

    def run(self, data: InputT, ctx: AgentContext) -> OutputT:
        """Do the agent's work.

        Args:
            data: the step's input, validated against ``input_model``.
            ctx: the run and step this call belongs to.

        Returns:
            An instance of ``output_model``.
        """
        raise NotImplementedError

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
