"""One call to an OpenAI-compatible chat-completions endpoint, over httpx.

The HTTP answer is sorted here into what the agent does next: an answer
(:class:`Completion`), a provider that is down (:class:`ProviderDown`: 5xx, a timeout, no
connection, a body that is no completion; the next provider is tried), one that throttles
(:class:`RateLimited`: 429 with its ``Retry-After``), or one that refuses the request
(:class:`Refused`: any other 4xx, which no retry will change). httpx's exceptions are
translated once, here. The API key goes in one header and nowhere else: any text kept
from the provider's answer has it blanked out, should the provider echo it.

httpx (a dependency already), not the OpenAI SDK: the SDK retries 429s and 5xx on its own,
sleeping in the worker slot, where the farm wants to see each failure (fallback, breaker,
a retry with the step's countdown); and one request shape is all this agent needs. The
client is the thread's own (:mod:`hive.agents.builtin.http_clients`), as the ``http``
agent's: one shared by a thread pool's threads would serialise their calls on its lock.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hive.agents.builtin.http_transport import Answer, BodyTooLarge, Stopped, exchange
from hive.agents.builtin.http_transport import retry_after_s as http_retry_after_s
from hive.agents.builtin.llm.models import Provider
from hive.settings import get_settings

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

# Enough of a provider's error to say what was wrong, not a page of HTML.
_DETAIL_CHARS = 300
# Connecting is quick or not at all; the read timeout is the step's timeout_s.
_CONNECT_TIMEOUT_S = 10.0
# Tokens one call may report, prompt or answer: far above any model's context.
MAX_CALL_TOKENS = 1_000_000_000


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CallFailed(Exception):
    """A call that brought no answer; ``outcome`` labels it in ``hive_llm_calls_total``."""

    outcome = "error"

    def __init__(self, endpoint: Provider, detail: str) -> None:
        super().__init__(f"{endpoint.resource_name}: {detail}")
        self.detail = detail


class ProviderDown(CallFailed):
    """5xx, a timeout, no connection, or a 2xx that is no completion: try the next one."""


class RateLimited(CallFailed):
    """429: the provider throttles this key; ``retry_after_s`` from its headers, if any."""

    outcome = "rate_limited"

    def __init__(self, endpoint: Provider, detail: str, retry_after_s: float | None) -> None:
        super().__init__(endpoint, detail)
        self.retry_after_s = retry_after_s


class Refused(CallFailed):
    """Another 4xx (bad request, unknown model, wrong key): the step cannot succeed."""

    outcome = "refused"


def chat(
    endpoint: Provider,
    base_url: str,
    api_key: str | None,
    body: dict[str, Any],
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    stop: Callable[[], bool] | None = None,
) -> Completion:
    """POST ``body`` to ``<base_url>/chat/completions`` and read the completion.
    ``base_url`` is the endpoint's own, or that of the instance of its service picked.
    ``stop`` (the step's ``ctx.is_cancelled``) ends a slow read of the answer.

    Raises:
        ProviderDown, RateLimited, Refused: see the module's docstring.
    """
    import httpx  # here: checking a pipeline's llm steps loads this module, and needs none

    sent = httpx.Headers({"Accept": "application/json", **(headers or {})})
    if api_key:
        sent["Authorization"] = f"Bearer {api_key}"
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, _CONNECT_TIMEOUT_S))
    url = f"{base_url}/chat/completions"
    logger.debug("POST %s (model %s, %d messages)", url, endpoint.model, len(body["messages"]))
    # Read whatever the status, never past the cap: an endless or huge answer would
    # otherwise be read into the worker's memory until the step's timeout.
    limit = get_settings().http.max_response_bytes
    try:
        answer = exchange(
            "POST",
            httpx.URL(url),
            headers=sent,
            body={"json": body},
            timeout=timeout,
            max_bytes=limit,
            wanted=lambda _status: True,
            stop=stop,
        )
    except BodyTooLarge as exc:
        raise ProviderDown(
            endpoint, f"answered with more than {limit} bytes (HIVE_HTTP_MAX_RESPONSE_BYTES)"
        ) from exc
    except Stopped as exc:
        raise ProviderDown(
            endpoint, "stopped reading the answer: the step ran past its timeout or its run ended"
        ) from exc
    except httpx.TimeoutException as exc:
        raise ProviderDown(endpoint, f"no answer within {timeout_s:g}s") from exc
    except httpx.HTTPError as exc:
        # Connection refused, reset, DNS: the message names no header.
        raise ProviderDown(endpoint, f"cannot reach it: {type(exc).__name__}: {exc}") from exc
    status = answer.status
    if status == 429:
        detail = f"HTTP 429 (rate limited){_detail(answer, api_key)}"
        raise RateLimited(endpoint, detail, retry_after_s(answer.headers))
    if status >= 500:
        raise ProviderDown(endpoint, f"HTTP {status}{_detail(answer, api_key)}")
    if status >= 400 or status < 200:
        raise Refused(endpoint, f"HTTP {status}{_detail(answer, api_key)}")
    return _completion(endpoint, answer)


def _completion(endpoint: Provider, answer: Answer) -> Completion:
    try:
        data = json.loads(answer.body)
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content") or ""
        usage = data.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
    # OverflowError: a count of 1e400 (JSON's float infinity) or of 400 digits;
    # RecursionError: arrays nested thousands deep.
    except (
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise ProviderDown(endpoint, "answered with something that is no chat completion") from exc
    if not isinstance(content, str):
        raise ProviderDown(endpoint, "answered with a message whose content is not text")
    if max(prompt, completion) > MAX_CALL_TOKENS:
        # Counted, it would cost the tenant's budget a fortune, or overflow the usage.
        raise ProviderDown(
            endpoint, f"answered with a token count over {MAX_CALL_TOKENS:,} for one call"
        )
    return Completion(
        content=content,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=max(prompt, 0),
        completion_tokens=max(completion, 0),
    )


def _detail(answer: Answer, api_key: str | None) -> str:
    """The provider's own error message (OpenAI's ``{"error": {"message": ...}}``), short,
    with the key blanked out should it be echoed."""
    try:
        data = json.loads(answer.body)
        error = data.get("error") if isinstance(data, dict) else None
        text = error.get("message") if isinstance(error, dict) else error
    except (ValueError, RecursionError):
        text = None
    if not isinstance(text, str) or not text.strip():
        return ""
    text = " ".join(text.split())
    if api_key:
        text = text.replace(api_key, "***")
    return f": {text[:_DETAIL_CHARS]}"


def retry_after_s(headers: httpx.Headers) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an
    HTTP date; None when there is none or it is no finite number (``inf``, ``nan``), which
    no countdown can be."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            wait_s = float(millis) / 1000
        except ValueError:
            wait_s = math.nan
        if math.isfinite(wait_s):
            return max(wait_s, 0.0)
    return http_retry_after_s(headers.get("retry-after"))


def request_body(
    model: str,
    messages: list[dict[str, str]],
    *,
    temperature: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


# The answer's tokens assumed when a step sets no max_tokens.
DEFAULT_ANSWER_TOKENS = 256


def estimate_tokens(messages: list[dict[str, str]], max_tokens: int | None) -> int:
    """Tokens the call may use, for tokens-per-minute limits before it is made: about four
    characters a token for the prompt, and ``max_tokens`` (else 256) for the answer. The
    real count corrects it after the call."""
    return estimate_prompt_tokens(messages) + (max_tokens or DEFAULT_ANSWER_TOKENS)


def estimate_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """About four characters a token, the messages' JSON counted whole."""
    return len(json.dumps(messages, ensure_ascii=False)) // 4
