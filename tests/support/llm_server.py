"""An OpenAI-compatible chat-completions server on loopback, for tests: real HTTP, with
the behaviour each test sets.

>>> server = LlmServer()
>>> server.script("model-a", Reply.failure(503), Reply.text("hello"))
>>> server.url                     # base URL of an llm step: http://127.0.0.1:PORT/v1
>>> server.requests_for("model-a") # what was asked: messages, model, headers
>>> server.close()

``POST /v1/chat/completions`` answers with the next :class:`Reply` scripted for the
request's model, then with the model's default (``Reply()``: ``"ok"``, 10 prompt and 5
completion tokens). ``GET /v1/models`` lists the models scripted. Every request is
recorded. A reply can be late (``delay_s``), an HTTP error with OpenAI's error body, a 429
with ``Retry-After``, a body that is not JSON, or any content with any usage figures.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One answer of the server."""

    content: str = "ok"
    status: int = 200
    delay_s: float = 0.0
    prompt_tokens: int | None = 10
    completion_tokens: int | None = 5
    retry_after: str | None = None
    """The ``Retry-After`` header's value, as sent."""
    body: bytes | None = None
    """Sent as the body instead of a completion (a malformed answer)."""
    error: str = "something went wrong"
    finish_reason: str = "stop"

    @classmethod
    def text(cls, content: str, **fields: Any) -> Reply:
        return cls(content=content, **fields)

    @classmethod
    def json(cls, value: Any, **fields: Any) -> Reply:
        return cls(content=json.dumps(value), **fields)

    @classmethod
    def failure(cls, status: int, error: str = "something went wrong", **fields: Any) -> Reply:
        return cls(status=status, error=error, **fields)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1", **fields: Any) -> Reply:
        return cls(status=429, retry_after=retry_after, error="Rate limit reached", **fields)

    @classmethod
    def malformed(cls) -> Reply:
        return cls(body=b'{"choices": [{"message": ')

    @classmethod
    def late(cls, delay_s: float, content: str = "late") -> Reply:
        return cls(content=content, delay_s=delay_s)


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []


class LlmServer:
    """The server, started at once on a free loopback port; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._requests: list[Recorded] = []
        self._stopping = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, model: str, *replies: Reply) -> None:
        """Answer the next requests for ``model`` with ``replies``, in order."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(replies)

    def default(self, model: str, reply: Reply) -> None:
        """Answer ``model`` with ``reply`` once its script is used up."""
        with self._lock:
            self._defaults[model] = reply

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.model == model]

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def _next(self, model: str) -> Reply:
        with self._lock:
            script = self._scripts.get(model)
            if script:
                return script.popleft()
            return self._defaults.get(model, Reply())

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)

    def _models(self) -> list[str]:
        with self._lock:
            return sorted({*self._scripts, *self._defaults})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def _handler(llm: LlmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real providers

        def do_GET(self) -> None:
            llm._record(Recorded("GET", self.path, dict(self.headers.items()), None))
            if self.path.rstrip("/") != "/v1/models":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            models = [{"id": m, "object": "model", "owned_by": "test"} for m in llm._models()]
            self._send(200, {"object": "list", "data": models})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            llm._record(Recorded("POST", self.path, dict(self.headers.items()), body))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            model = body.get("model") if isinstance(body, dict) else None
            reply = llm._next(str(model))
            if reply.delay_s and llm._stopping.wait(reply.delay_s):
                return
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            if reply.body is not None:
                self._send_raw(reply.status, reply.body, headers)
            elif reply.status != 200:
                error = {"message": reply.error, "type": "test_error", "code": reply.status}
                self._send(reply.status, {"error": error}, headers)
            else:
                self._send(200, _completion(str(model), reply), headers)

        def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            self._send_raw(status, json.dumps(data).encode(), headers or {})

        def _send_raw(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (its timeout): what the test wanted

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _completion(model: str, reply: Reply) -> dict[str, Any]:
    usage: dict[str, int] = {}
    if reply.prompt_tokens is not None:
        usage["prompt_tokens"] = reply.prompt_tokens
    if reply.completion_tokens is not None:
        usage["completion_tokens"] = reply.completion_tokens
    if usage:
        usage["total_tokens"] = sum(usage.values())
    return {
        "id": f"chatcmpl-test-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage or None,
    }
