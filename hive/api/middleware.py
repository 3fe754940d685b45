"""ASGI middleware of the API: the body cap, security headers, and the last-resort answer.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: the body is counted as it
arrives, before the application reads any of it, and nothing is buffered twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hive.api.errors import error_body, hive_error_response

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


async def _send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """Refuse a body over ``max_bytes`` with 413, whether its length is declared or not
    (chunked): the body is read here, up to the cap, and handed on whole."""

    def __init__(self, app: App, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        disconnected = False
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered and not disconnected:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        message = (
            f"the request body is larger than {self.max_bytes} bytes (HIVE_API_MAX_BODY_BYTES)"
        )
        await _send_json(send, 413, error_body("too_large", message), [(b"connection", b"close")])


def _rate_headers(scope: Scope, message: Message) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers admission left in the request's state, unless the answer
    has its own (a 429)."""
    state = scope.get("state") or {}
    given = state.get("rate_headers") if isinstance(state, dict) else None
    if not given:
        return []
    present = {name.lower() for name, _ in message.get("headers", [])}
    return [
        (name.lower().encode(), value.encode())
        for name, value in given.items()
        if name.lower().encode() not in present
    ]


class Guard:
    """Outermost: security headers on every answer, and any exception that escaped the
    application turned into a JSON answer (503 for a server Hive cannot reach, else 500),
    logged here, with nothing of it in the body."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    *SECURITY_HEADERS,
                    *_rate_headers(scope, message),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            from hive.service import translate_failure

            translated = translate_failure(exc)
            if translated is not None:
                response = hive_error_response(translated)
                await response(scope, receive, send_with_headers)
                return
            logger.exception(
                "unexpected error answering %s %s", scope.get("method"), scope.get("path")
            )
            await _send_json(send_with_headers, 500, error_body("internal", "internal error"), [])
