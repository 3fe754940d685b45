"""One HTTP exchange for agents that call out, on the thread's client
(:mod:`hive.agents.builtin.http_clients`): the answer read as a stream and never past a
size cap; ``Retry-After`` read.

Nothing here knows of steps or errors the farm retries: :mod:`hive.agents.builtin.http`
turns what happens into an output or a :class:`~hive.errors.HiveError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

# What a failed call's answer is read of, for its error message: enough to say why.
EXCERPT_BYTES = 1024
# An answer read for longer than this asks stop() after each piece.
_STOP_AFTER_S = 1.0


class Stopped(Exception):
    """Reading stopped: ``stop()`` said so (the step ran past its timeout, its run ended)."""


class BodyTooLarge(Exception):
    """The answer's body is larger than the cap; ``seen`` is how much was known of it."""

    def __init__(self, limit: int, seen: int) -> None:
        super().__init__(limit, seen)
        self.limit = limit
        self.seen = seen


@dataclass(frozen=True)
class Answer:
    """A response: its whole body if its status was wanted, else an excerpt of it."""

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes
    encoding: str
    elapsed_s: float


def exchange(
    method: str,
    url: httpx.URL,
    *,
    headers: httpx.Headers,
    body: dict[str, Any],
    timeout: httpx.Timeout,
    max_bytes: int,
    wanted: Callable[[int], bool],
    stop: Callable[[], bool] | None = None,
) -> Answer:
    """Send one request and read its answer: all of it, for a ``wanted`` status, or the
    first :data:`EXCERPT_BYTES` otherwise. ``body`` is httpx's ``json=`` or ``content=``.
    ``stop`` (the step's ``ctx.is_cancelled``) is asked after each piece of the answer:
    the read timeout bounds each wait for a piece, not the whole, so a server sending a
    byte at a time would otherwise keep an agent abandoned at its deadline reading for ever.

    Raises:
        BodyTooLarge: a wanted answer is longer than ``max_bytes`` (declared so, or read so:
            reading stops there).
        Stopped: ``stop()`` turned True while the answer was being read.
        httpx.TransportError: no answer (connection, timeout, protocol).
    """
    # Here, with httpx: the agents' modules load wherever pipelines are checked, which
    # builds no client.
    from hive.agents.builtin.http_clients import thread_client

    began = time.perf_counter()
    with thread_client().stream(method, url, headers=headers, timeout=timeout, **body) as response:
        whole = wanted(response.status_code)
        limit = max_bytes if whole else EXCERPT_BYTES
        declared = response.headers.get("content-length", "")
        # A declared length is of the encoded body; decoded it can only be checked as read.
        encoded = "content-encoding" in response.headers
        if whole and declared.isdigit() and not encoded and int(declared) > limit:
            raise BodyTooLarge(limit, int(declared))
        read = _read(response, limit, whole, stop)
        return Answer(
            status=response.status_code,
            reason=response.reason_phrase,
            headers=response.headers,
            body=read[:limit],
            encoding=_encoding(response),
            elapsed_s=time.perf_counter() - began,
        )


def _encoding(response: httpx.Response) -> str:
    """The answer's charset, else UTF-8 (the clients' default encoding). httpx finds the
    charset with the ``email`` package's header parser, 8 us of CPU a call (measured) even
    for a Content-Type that names none, as most JSON answers do."""
    if "charset" not in response.headers.get("content-type", "").lower():
        return "utf-8"
    return response.encoding or "utf-8"


def _read(
    response: httpx.Response, limit: int, whole: bool, stop: Callable[[], bool] | None
) -> bytes:
    """At most one chunk past ``limit`` of the decoded body: past it, the ``whole`` body of a
    wanted answer is :class:`BodyTooLarge`; an excerpt simply stops there."""
    chunks: list[bytes] = []
    size = 0
    # stop() may ask the database: only an answer slower than this to read asks it at all.
    ask_after = time.monotonic() + _STOP_AFTER_S
    for chunk in response.iter_bytes():
        if stop is not None and time.monotonic() >= ask_after and stop():
            raise Stopped()
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if whole:
                raise BodyTooLarge(limit, size)
            break
    return b"".join(chunks)


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP-date; 0 for a
    date past), None when absent or unreadable. The farm caps it, as any retry's delay, at
    the step's ``retry_backoff_max``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
