"""A small HTTP server on loopback whose paths answer with the status the test sets:
``/<name>`` answers ``answers[name]``: a status code, or ``"hang"`` (no answer until the
server stops)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthStub:
    def __init__(self, answers: dict[str, int | str]) -> None:
        self.answers = dict(answers)
        self.hits: dict[str, int] = {}
        self._stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/")
                stub.hits[name] = stub.hits.get(name, 0) + 1
                answer = stub.answers.get(name, 404)
                if answer == "hang":
                    stub._stopping.wait(120)
                    return
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

    def url(self, name: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
