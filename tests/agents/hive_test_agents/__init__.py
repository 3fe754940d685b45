"""Agents that exist only for the farm's tests: ``crash``, ``hang`` and ``nul_error`` break
it on purpose, ``chatty`` logs the way agents and the libraries they call do.

They are not part of Hive: a production worker must never run an agent that SIGKILLs its
own process. The test set-up installs this package, whose ``hive.agents`` entry points
register them in the test venv's workers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import Agent, AgentContext, AgentOptions, Resource
from hive.errors import PermanentError, RetryableError, ServiceUnavailable, StepDeferred

__all__ = [
    "CalloutAgent",
    "CalloutInput",
    "CalloutOutput",
    "ChattyAgent",
    "ChattyInput",
    "ChattyOutput",
    "CrashAgent",
    "CrashInput",
    "CrashOutput",
    "DeferAgent",
    "DeferInput",
    "HangAgent",
    "HangInput",
    "HangOutput",
    "NulErrorAgent",
    "NulErrorInput",
    "RetryAfterAgent",
    "RetryAfterInput",
]

# How often hang wakes up (and swallows whatever interrupted it).
_SLEEP_SLICE_S = 0.05


class CrashInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: int = Field(default=1_000_000, ge=0, description="attempts that kill their process")


class CrashOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: int


class CrashAgent(Agent[CrashInput, CrashOutput]):
    """Kills its own process (SIGKILL) on its first ``times`` attempts: a poison step."""

    name = "crash"
    version = "1"
    input_model = CrashInput
    output_model = CrashOutput
    options = AgentOptions(timeout=60.0, max_retries=2, retry_backoff=0.1, retry_backoff_max=1.0)

    def run(self, data: CrashInput, ctx: AgentContext) -> CrashOutput:
        """Die like an out-of-memory kill while ``ctx.attempt <= data.times``."""
        if ctx.attempt <= data.times:
            os.kill(os.getpid(), signal.SIGKILL)
        return CrashOutput(attempt=ctx.attempt)


class HangInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=3600)


class HangOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slept: float


class HangAgent(Agent[HangInput, HangOutput]):
    """Sleeps ``seconds``, ignoring the soft time limit: only the hard limit stops it."""

    # Like an agent stuck in C code, it swallows whatever interrupts its sleep.

    name = "hang"
    version = "1"
    input_model = HangInput
    output_model = HangOutput
    options = AgentOptions(timeout=60.0, max_retries=0, retry_backoff=0.1, retry_backoff_max=1.0)

    def run(self, data: HangInput, ctx: AgentContext) -> HangOutput:
        """Sleep the whole ``seconds``, whatever is raised meanwhile."""
        started = time.monotonic()
        deadline = started + data.seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                time.sleep(min(_SLEEP_SLICE_S, remaining))
            except BaseException as exc:  # the point of this agent: it ignores every signal
                ctx.logger.info("hang: ignoring %s", type(exc).__name__)
        return HangOutput(slept=round(time.monotonic() - started, 3))


class NulErrorInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NulErrorAgent(Agent[NulErrorInput, CrashOutput]):
    """Always fails with a NUL character in its error message, as an error quoting binary data
    can: ``jsonb`` cannot store one as it is."""

    name = "nul_error"
    version = "1"
    input_model = NulErrorInput
    output_model = CrashOutput
    options = AgentOptions(timeout=60.0, max_retries=0)

    def run(self, data: NulErrorInput, ctx: AgentContext) -> CrashOutput:
        """Raise :class:`PermanentError` with a NUL in its message."""
        raise PermanentError("bad byte \x00 in the reply")


class ChattyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class ChattyOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    trace_id: str | None


# A library the agent calls, logging under its own name as any SDK does.
_library_logger = logging.getLogger("chatty_sdk.client")


class ChattyAgent(Agent[ChattyInput, ChattyOutput]):
    """Logs through ``ctx.logger``, a library's logger and the root logger, each record
    naming its step, and returns its text with the trace id it was given."""

    name = "chatty"
    version = "1"
    input_model = ChattyInput
    output_model = ChattyOutput
    options = AgentOptions(timeout=60.0, max_retries=0)

    def run(self, data: ChattyInput, ctx: AgentContext) -> ChattyOutput:
        """Log four records (one at DEBUG, with the payload) and echo ``data.text``."""
        ctx.logger.info("chatty: starting %s", ctx.step_id)
        _library_logger.info("chatty_sdk: calling out for %s", ctx.step_id)
        logging.getLogger().warning("chatty: root logger in %s", ctx.step_id)
        ctx.logger.debug("chatty: payload %r", data.text)
        return ChattyOutput(text=data.text, trace_id=ctx.trace_id)


class RetryAfterInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: int = Field(ge=0, description="attempts that fail before one succeeds")
    retry_after_s: float = Field(ge=0, description="what each failure says to wait")
    unavailable: bool = Field(
        default=False, description="fail as a server the agent needs being unreachable"
    )


class RetryAfterAgent(Agent[RetryAfterInput, CrashOutput]):
    """Fails its first ``times`` attempts as a server answering 429 with ``Retry-After``."""

    name = "retry_after"
    version = "1"
    input_model = RetryAfterInput
    output_model = CrashOutput
    # The backoff alone would retry at once: any wait comes from Retry-After.
    options = AgentOptions(timeout=60.0, max_retries=3, retry_backoff=0.0, retry_backoff_max=30.0)

    def run(self, data: RetryAfterInput, ctx: AgentContext) -> CrashOutput:
        """Raise :class:`RetryableError` with ``retry_after_s`` (or, ``unavailable``,
        :class:`ServiceUnavailable` with no hint) while ``attempt <= times``."""
        if ctx.attempt <= data.times and data.unavailable:
            raise ServiceUnavailable("its database", "connection refused")
        if ctx.attempt <= data.times:
            raise RetryableError("429 Too Many Requests", retry_after_s=data.retry_after_s)
        return CrashOutput(attempt=ctx.attempt)


class DeferInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: int = Field(ge=0, description="attempt numbers that defer before one runs")
    countdown_s: float = Field(default=0.2, ge=0)
    kind: str = "other"


class DeferAgent(Agent[DeferInput, CrashOutput]):
    """Defers its step itself (``StepDeferred``) while ``ctx.attempt <= times``: each
    deferral uses an attempt number, none a retry. ``max_retries`` is 0, so one counted
    failure would fail the step."""

    name = "defer"
    version = "1"
    input_model = DeferInput
    output_model = CrashOutput
    options = AgentOptions(timeout=60.0, max_retries=0)

    def run(self, data: DeferInput, ctx: AgentContext) -> CrashOutput:
        """Raise :class:`StepDeferred` while ``attempt <= times``, then succeed."""
        if ctx.attempt <= data.times:
            raise StepDeferred(f"test deferral {ctx.attempt}", data.countdown_s, data.kind)
        return CrashOutput(attempt=ctx.attempt)


class CalloutInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="a loopback server of the test's")
    name: str = Field(default="partner", description="the resource the farm guards")
    kind: Literal["service", "model"] = "service"
    tokens: int = Field(default=0, ge=0, description="the call's estimate")
    used_tokens: int | None = Field(default=None, ge=0, description="what it turns out to use")


class CalloutOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: int
    attempt: int


class CalloutAgent(Agent[CalloutInput, CalloutOutput]):
    """Calls ``url`` once inside ``ctx.call(Resource(kind, name))``, as an http or llm agent
    does: a 5xx answer raises (a failure for the breaker, a retryable one for the step)."""

    name = "callout"
    version = "1"
    input_model = CalloutInput
    output_model = CalloutOutput
    options = AgentOptions(timeout=30.0, max_retries=5, retry_backoff=0.1, retry_backoff_max=0.5)

    def run(self, data: CalloutInput, ctx: AgentContext) -> CalloutOutput:
        """GET ``url``; raise :class:`RetryableError` on a 5xx."""
        with ctx.call(Resource(data.kind, data.name, tokens=data.tokens)) as ticket:
            try:
                with urllib.request.urlopen(data.url, timeout=60) as answer:
                    status = int(answer.status)
            except urllib.error.HTTPError as exc:
                status = exc.code
            if data.used_tokens is not None:
                ticket.used_tokens(data.used_tokens)
            if status >= 500:
                raise RetryableError(f"partner answered {status}")
        return CalloutOutput(status=status, attempt=ctx.attempt)
