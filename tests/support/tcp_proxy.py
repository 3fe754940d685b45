"""A TCP proxy the test can cut: PostgreSQL "unavailable" without stopping the shared server."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.redis_server import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream. ``cut()`` drops every connection and refuses
    new ones until ``restore()``. ``lose_reply_to(marker)`` lets the next request containing
    ``marker`` through, then drops the connection instead of passing on the answer: the
    server did the work (committed), the client never hears of it. ``hold_reply_to(marker)``
    keeps that answer in the proxy instead, until ``release()``: the server has answered
    (``reply_held`` is set), the client has not heard yet."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopped = False
        self._marker: bytes | None = None
        self._doomed: set[socket.socket] = set()  # client sockets whose next answer is lost
        self.replies_lost = 0
        self._hold_marker: bytes | None = None
        self._holding: set[socket.socket] = set()  # client sockets whose next answer waits
        self.reply_held = threading.Event()
        self._released = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_reply_to(self, marker: bytes) -> None:
        """Arm once: see the class docstring."""
        with self._lock:
            self._marker = marker

    def hold_reply_to(self, marker: bytes) -> None:
        """Arm once: see the class docstring."""
        with self._lock:
            self._hold_marker = marker

    def release(self) -> None:
        """Pass the held answer on (and any answer held later)."""
        self._released.set()

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            for conn in list(self._conns):
                _close(conn)
            self._conns.clear()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._stopped = True
        self.release()
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst, src is client), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client:
                    with self._lock:
                        # Matched across reads; marked before forwarding, so the answer
                        # cannot slip through first.
                        if self._marker is not None and self._marker in tail + data:
                            self._marker = None
                            self._doomed.add(src)
                        if self._hold_marker is not None and self._hold_marker in tail + data:
                            self._hold_marker = None
                            self._holding.add(src)
                    tail = data[-256:]
                else:
                    with self._lock:
                        doomed = dst in self._doomed
                        if doomed:
                            self._doomed.discard(dst)
                            self.replies_lost += 1
                        held = dst in self._holding
                        self._holding.discard(dst)
                    if doomed:
                        break
                    if held:
                        self.reply_held.set()
                        self._released.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
