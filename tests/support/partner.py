"""A partner service on loopback for the guard's tests: every request waits ``delay_s`` and
answers ``status``, both set (and changed) by the test; it counts what it served, how many
requests it held at once, and the most at once."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PartnerServer:
    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.status = status
        self.delay_s = delay_s
        self.answered: list[tuple[float, float, int]] = []
        """(time received, time answered, status) of every request."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received = time.time()
                with partner._lock:
                    partner.in_flight += 1
                    partner.max_in_flight = max(partner.max_in_flight, partner.in_flight)
                    delay, status = partner.delay_s, partner.status
                try:
                    time.sleep(delay)
                finally:
                    # Counted out before the answer leaves: its caller holds its slot until
                    # the answer is in, so a request counted here is always inside a slot.
                    # Counted out after the send, this thread could be descheduled long
                    # enough (a loaded machine) for the caller to release, another to take
                    # the slot and its request to arrive: one more at once than was held.
                    with partner._lock:
                        partner.in_flight -= 1
                        partner.answered.append((received, time.time(), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/call"

    def served(self, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for _, _, s in self.answered if status is None or s == status)

    def reset_max(self) -> None:
        with self._lock:
            self.max_in_flight = self.in_flight

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
