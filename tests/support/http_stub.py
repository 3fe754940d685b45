"""A small HTTP server on loopback whose paths answer with the status the test sets:
``/<name>`` answers ``answers[name]``: a status code, or ``"hang"`` (no answer until the
server stops, or the client hangs up), or ``"gate"`` (200 once ``gate`` is set). ``held``
is how many requests wait for their answer now, ``peak`` the most at once: a request stops
counting before its answer is sent, so a client's next request never overlaps it."""

from __future__ import annotations

import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthStub:
    def __init__(self, answers: dict[str, int | str]) -> None:
        self.answers = dict(answers)
        self.hits: dict[str, int] = {}
        self.held = 0
        self.peak = 0
        self._counting = threading.Lock()
        self._stopping = threading.Event()
        self.gate = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/")
                with stub._counting:
                    stub.hits[name] = stub.hits.get(name, 0) + 1
                    stub.held += 1
                    stub.peak = max(stub.peak, stub.held)
                answer = stub.answers.get(name, 404)
                if answer == "hang":
                    stub._hang(self.connection)
                elif answer == "gate":
                    stub.gate.wait(120)
                    answer = 200
                with stub._counting:
                    stub.held -= 1
                if answer != "hang":
                    self.send_response(int(answer))
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # listen()'s backlog: a sweep connects to all at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _hang(self, connection: socket.socket) -> None:
        """No answer until the server stops or the client closes the connection."""
        for _ in range(1200):
            if self._stopping.is_set():
                return
            readable, _, _ = select.select([connection], [], [], 0.1)
            if readable and not connection.recv(1, socket.MSG_PEEK):
                return

    def url(self, name: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
