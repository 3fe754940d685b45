"""Agents that exercise the farm itself: ``echo``, ``sleep`` and ``fail``.

Pipelines in tests and benchmarks (users' own included) use them to produce a known
output, hold a worker for a while, or fail a given number of times. Agents that break
a worker on purpose (``crash``, ``hang``) are not shipped: the test suite installs them
from ``tests/agents`` through the ``hive.agents`` entry point.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import Agent, AgentContext, AgentOptions
from hive.errors import PermanentError, RetryableError

# How often sleep looks at the cancellation flag.
_SLEEP_SLICE_S = 0.05


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class EchoOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class EchoAgent(Agent[EchoInput, EchoOutput]):
    """Returns its text unchanged."""

    name = "echo"
    version = "1"
    input_model = EchoInput
    output_model = EchoOutput
    options = AgentOptions(timeout=60.0)

    def run(self, data: EchoInput, ctx: AgentContext) -> EchoOutput:
        """Return ``data.text`` as it came.

        Args:
            data: the text.
            ctx: the step this call belongs to.

        Returns:
            The same text.
        """
        return EchoOutput(text=data.text)


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=3600)


class SleepOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slept: float = Field(description="seconds actually slept; less than asked if cancelled")


class SleepAgent(Agent[SleepInput, SleepOutput]):
    """Sleeps for a given time, stopping early when the run is cancelled."""

    name = "sleep"
    version = "1"
    input_model = SleepInput
    output_model = SleepOutput
    options = AgentOptions(timeout=3700.0)

    def run(self, data: SleepInput, ctx: AgentContext) -> SleepOutput:
        """Sleep ``data.seconds`` in short slices, checking ``ctx.is_cancelled`` between them.

        Args:
            data: how long to sleep.
            ctx: the step this call belongs to; its ``is_cancelled`` can cut the sleep short.

        Returns:
            How long the agent slept, in seconds.
        """
        started = time.monotonic()
        deadline = started + data.seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if ctx.is_cancelled():
                ctx.logger.info("sleep cancelled after %.2fs", time.monotonic() - started)
                break
            time.sleep(min(_SLEEP_SLICE_S, remaining))
        return SleepOutput(slept=round(time.monotonic() - started, 3))


class FailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: int = Field(ge=0, description="attempts that fail before one succeeds")
    permanent: bool = False
    message: str = "induced failure"


class FailOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: int


class FailAgent(Agent[FailInput, FailOutput]):
    """Fails its first ``times`` attempts, then succeeds."""

    name = "fail"
    version = "1"
    input_model = FailInput
    output_model = FailOutput
    # Short backoffs so that tests of retrying do not wait.
    options = AgentOptions(timeout=60.0, max_retries=5, retry_backoff=0.1, retry_backoff_max=1.0)

    def run(self, data: FailInput, ctx: AgentContext) -> FailOutput:
        """Raise while ``ctx.attempt <= data.times``; succeed afterwards.

        Args:
            data: how many attempts fail, and how.
            ctx: the step this call belongs to; ``attempt`` counts from 1.

        Returns:
            The attempt that succeeded.

        Raises:
            PermanentError: on a failing attempt, when ``data.permanent``.
            RetryableError: on a failing attempt otherwise.
        """
        if ctx.attempt <= data.times:
            if data.permanent:
                raise PermanentError(data.message)
            raise RetryableError(data.message)
        return FailOutput(attempt=ctx.attempt)
