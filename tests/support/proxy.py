"""A TCP proxy in front of a test server that can lose answers: the request goes through,
the server acts on it, and its answer is thrown away with the client's connection, as
when a network drops between a server's commit and the client's read."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class DroppingProxy:
    """Forwards 127.0.0.1:<port> to ``target_port``. The answers to the first ``drops``
    requests that start with ``request_prefix`` are read from the server and discarded,
    and the client's connection closed without a byte of them."""

    def __init__(self, target_port: int, request_prefix: bytes, drops: int = 1) -> None:
        self.target_port = target_port
        self.request_prefix = request_prefix
        self.drops_left = drops
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> DroppingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            dropping = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, dropping), daemon=True
            ).start()
            threading.Thread(
                target=self._answers, args=(upstream, client, dropping), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, dropping: threading.Event
    ) -> None:
        while chunk := _recv(client):
            with self._lock:
                if chunk.startswith(self.request_prefix) and self.drops_left > 0:
                    self.drops_left -= 1
                    dropping.set()  # before the server can answer
            try:
                upstream.sendall(chunk)
            except OSError:
                break
        _close(upstream)

    def _answers(
        self, upstream: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        while chunk := _recv(upstream):
            if dropping.is_set():
                with self._lock:
                    self.dropped += 1
                break  # the answer is lost, and the connection with it
            try:
                client.sendall(chunk)
            except OSError:
                break
        _close(client)
        _close(upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
