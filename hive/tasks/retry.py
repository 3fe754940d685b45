"""Retry policy: which failures are retried, and after how long."""

from __future__ import annotations

import random
import traceback
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError

from hive.errors import InvalidAgentInput, InvalidAgentOutput, PermanentError
from hive.pipelines.refs import UnresolvedReference


def backoff_s(attempt: int, options: dict[str, Any], rng: random.Random | None = None) -> float:
    """Delay before the attempt after ``attempt``: exponential from ``retry_backoff``, capped
    at ``retry_backoff_max``, with "equal jitter" (half fixed, half random) when enabled."""
    base = float(options.get("retry_backoff", 1.0))
    cap = float(options.get("retry_backoff_max", 300.0))
    delay = min(cap, base * (2 ** max(attempt - 1, 0)))
    if options.get("retry_jitter", True) and delay > 0:
        delay = delay / 2 + (rng or random).uniform(0, delay / 2)
    return float(delay)


_KINDS: dict[type[BaseException], str] = {
    SoftTimeLimitExceeded: "timeout",
    InvalidAgentInput: "invalid_input",
    InvalidAgentOutput: "invalid_output",
    UnresolvedReference: "invalid_input",
}


def error_info(exc: BaseException) -> dict[str, Any]:
    """What is recorded of a failure: a type, a message and the traceback."""
    kind = next((k for cls, k in _KINDS.items() if isinstance(exc, cls)), type(exc).__name__)
    message = "the step ran past its timeout" if kind == "timeout" else str(exc)
    return {
        "type": kind,
        "message": message[:4000],
        "traceback": "".join(traceback.format_exception(exc))[-16000:],
    }


def is_retryable(exc: BaseException) -> bool:
    """Permanent errors and invalid data are never retried; everything else may be."""
    return not isinstance(exc, PermanentError | ValidationError | UnresolvedReference)
