"""A real HTTP server on loopback whose answers each test programs, and which records every
request it gets: the service that ``http`` (and ``llm``) steps call in tests.

    service = HttpService()
    service.route("/customers/42", Reply(json={"name": "Ada"}))
    service.route("/flaky", Reply(503, retry_after="1"), Reply(json={"ok": True}))
    ...  # a step calls service.url("/customers/42")
    service.requests  # what it got: method, path, query, headers, body, client port
    service.close()

A route's replies are given in turn, the last one again and again; a reply may be a
function of the request. Any path without a route answers 404. HTTP/1.1 with keep-alive,
so a client's reused connection shows as one client port; a thread per connection, so
hundreds of slow calls can be in flight at once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the server got it; header names lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_port: int
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """An answer: a status, headers, and a body given as ``json``, ``text`` or ``size``
    bytes of ``x`` (sent in chunks, without a Content-Length unless ``declare_size``), after
    ``delay_s``. ``echo`` answers the request itself as JSON (method, path, query, headers,
    body)."""

    status: int = 200
    json: Any = None
    text: str | None = None
    size: int | None = None
    declare_size: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    delay_s: float = 0.0
    echo: bool = False
    trickle_s: float = 0.0
    """With ``size``: one byte, then this long, and so on (a server that trickles)."""


Answer = Reply | Callable[[Request], Reply]


class HttpService:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._routes: dict[str, list[Answer]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                service._serve(self)

            # http.server dispatches to do_<METHOD>: every method is served alike.
            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # listen()'s backlog: hundreds of calls connect at once

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A caller that gave up (its timeout, a cancelled step) hung up before the
                # answer: expected here, not worth a traceback in the test output.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        # A short poll: close() waits for serve_forever to notice.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/") -> str:
        return self.address + path

    def route(self, path: str, *answers: Answer) -> None:
        """Answer ``path`` with ``answers`` in turn, then the last one from then on."""
        with self._lock:
            self._routes[path] = list(answers)
            self._served[path] = 0

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            answers = self._routes.get(request.path)
            if not answers:
                return Reply(404, json={"error": f"no route {request.path}"})
            served = self._served[request.path]
            self._served[request.path] = served + 1
            answer = answers[min(served, len(answers) - 1)]
        return answer(request) if callable(answer) else answer

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
            client_port=handler.client_address[1],
        )
        reply = self._next(request)
        if reply.delay_s:
            self._stopping.wait(reply.delay_s)
        _send(handler, request, reply)


def _send(handler: BaseHTTPRequestHandler, request: Request, reply: Reply) -> None:
    headers = dict(reply.headers)
    if reply.retry_after is not None:
        headers["Retry-After"] = reply.retry_after
    if reply.size is not None:
        handler.send_response(reply.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "text/plain")
        if reply.declare_size:
            handler.send_header("Content-Length", str(reply.size))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        _send_chunks(handler, reply.size, chunked=not reply.declare_size, trickle_s=reply.trickle_s)
        return
    body, content_type = _body(request, reply)
    handler.send_response(reply.status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if content_type and "content-type" not in {k.lower() for k in headers}:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if request.method != "HEAD":
        handler.wfile.write(body)


def _body(request: Request, reply: Reply) -> tuple[bytes, str | None]:
    if reply.echo:
        seen = {
            "method": request.method, "path": request.path, "query": request.query,
            "headers": request.headers, "body": request.body.decode(errors="replace"),
        }  # fmt: skip
        return json.dumps(seen).encode(), "application/json"
    if reply.text is not None:
        return reply.text.encode(), "text/plain; charset=utf-8"
    if reply.json is not None:
        return json.dumps(reply.json).encode(), "application/json"
    return b"", None


def _send_chunks(
    handler: BaseHTTPRequestHandler, size: int, *, chunked: bool, trickle_s: float = 0.0
) -> None:
    left = size
    try:
        while left:
            piece = b"x" * min(left, 1 if trickle_s else 64 * 1024)
            left -= len(piece)
            if chunked:
                handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                handler.wfile.write(piece)
            if trickle_s:
                handler.wfile.flush()
                time.sleep(trickle_s)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client stopped reading: what a cap does
