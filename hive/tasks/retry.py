"""Retry policy: which failures are retried, and after how long."""

from __future__ import annotations

import math
import random
import traceback
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded

from hive.agents.base import AgentOptions
from hive.errors import (
    InvalidAgentInput,
    InvalidAgentOutput,
    MalformedReference,
    PermanentError,
    RetryableError,
    UnresolvedReference,
)
from hive.tasks.deadline import RunCancelled

# The policy for a failure whose class says nothing (neither PermanentError nor
# RetryableError): a bug, a library's error, the soft time limit. Retried, within
# max_retries, like a RetryableError: a step that fails the same way every time ends in
# the dead letters after its retries, and a passing fault gets its chance.
RETRY_UNCLASSIFIED = True


def is_retryable(exc: BaseException) -> bool:
    """Whether a step failing with ``exc`` is tried again (within its max_retries), read
    from the class alone (:mod:`hive.errors`): :class:`~hive.errors.PermanentError`
    never, :class:`~hive.errors.RetryableError` (:class:`~hive.errors.TransientError`,
    :class:`~hive.errors.ServiceUnavailable`) always, anything else by
    :data:`RETRY_UNCLASSIFIED`."""
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, RetryableError):
        return True
    return RETRY_UNCLASSIFIED


def backoff_s(attempt: int, options: AgentOptions, rng: random.Random | None = None) -> float:
    """Delay before the attempt after ``attempt``: exponential from ``retry_backoff``, capped
    at ``retry_backoff_max``, with "equal jitter" (half fixed, half random) when enabled."""
    delay = min(options.retry_backoff_max, options.retry_backoff * (2 ** max(attempt - 1, 0)))
    if options.retry_jitter and delay > 0:
        delay = delay / 2 + (rng or random).uniform(0, delay / 2)
    return float(delay)


def retry_delay_s(attempt: int, options: AgentOptions, error: dict[str, Any]) -> float:
    """Countdown before the attempt after ``attempt``: the server's own word when the error
    carries one (``retry_after_s``, from an HTTP ``Retry-After``), else :func:`backoff_s`.
    Either way at most ``retry_backoff_max``, the step's cap on any retry delay: a message's
    countdown must stay well inside the broker's visibility timeout, and a step that must
    wait longer says so in its options."""
    retry_after = error.get("retry_after_s")
    if (
        isinstance(retry_after, int | float)
        and not isinstance(retry_after, bool)
        and math.isfinite(retry_after)
    ):
        return float(min(max(retry_after, 0.0), options.retry_backoff_max))
    return backoff_s(attempt, options)


_KINDS: dict[type[BaseException], str] = {
    SoftTimeLimitExceeded: "timeout",
    RunCancelled: "cancelled",
    InvalidAgentInput: "invalid_input",
    InvalidAgentOutput: "invalid_output",
    UnresolvedReference: "invalid_input",
    MalformedReference: "invalid_input",
}


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when an agent's own exception cannot say what it is: the
    failure is still recorded (and the step failed or retried) rather than left running."""
    try:
        return str(exc)
    except Exception as broken:
        return f"<{type(exc).__name__}: its message could not be read ({type(broken).__name__})>"


def error_info(exc: BaseException) -> dict[str, Any]:
    """What is recorded of a failure: a type, a message and the traceback."""
    kind = next((k for cls, k in _KINDS.items() if isinstance(exc, cls)), type(exc).__name__)
    message = "the step ran past its timeout" if kind == "timeout" else _text_of(exc)
    info: dict[str, Any] = {
        "type": kind,
        "message": message[:4000],
        "traceback": "".join(traceback.format_exception(exc))[-16000:],
    }
    wait_s = exc.retry_after_s if isinstance(exc, RetryableError) else None
    # Kept with the error: the retry's countdown (retry_delay_s) and whoever reads it. Only a
    # number: an agent's NaN or infinity (a server's "Retry-After: inf") is no JSON that
    # PostgreSQL stores, and the failure could not be recorded at all.
    if isinstance(wait_s, int | float) and not isinstance(wait_s, bool) and math.isfinite(wait_s):
        info["retry_after_s"] = float(wait_s)
    return info
