"""A slow HTTP server on loopback: every call is answered after a fixed delay, and the
server counts how many calls it holds at once. For ``bench.concurrency`` and the tests of
many steps in flight.

One asyncio loop in a process of its own (``python -m bench.slow_server``): a waiting call
costs a coroutine, not a thread, so it holds thousands of open connections, and the worker
under test does not share its GIL. HTTP/1.1 with keep-alive; just enough of it for httpx.

- ``GET|POST /call...``  answers ``{"ok": true}`` after the delay (``?delay=S`` overrides it);
- ``GET /stats``         answers at once: ``in_flight``, ``peak`` (most calls held at once),
                         ``served``, ``connections``, ``peak_connections``;
- ``POST /reset``        zeroes ``peak``, ``served`` and ``peak_connections``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_READY = "slow server listening on "
_MAX_HEADER_BYTES = 16384


@dataclass
class Counts:
    in_flight: int = 0
    peak: int = 0
    served: int = 0
    connections: int = 0
    peak_connections: int = 0


class SlowServer:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.counts = Counts()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts = self.counts
        counts.connections += 1
        counts.peak_connections = max(counts.peak_connections, counts.connections)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            counts.connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle keep-alive connection
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        length = int(headers.get("content-length") or 0)
        if length:
            await reader.readexactly(length)
        url = urlsplit(target)
        status, body = await self._answer(method, url.path, parse_qs(url.query))
        keep = headers.get("connection", "").lower() != "close"
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return keep

    async def _answer(
        self, method: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        counts = self.counts
        if path == "/stats":
            return 200, asdict(counts)
        if path == "/reset" and method == "POST":
            counts.peak = counts.in_flight
            counts.served = 0
            counts.peak_connections = counts.connections
            return 200, asdict(counts)
        if not path.startswith("/call"):
            return 404, {"error": f"no such path: {path}"}
        delay = float(query.get("delay", [self.delay_s])[0])
        counts.in_flight += 1
        counts.peak = max(counts.peak, counts.in_flight)
        try:
            await asyncio.sleep(delay)
        finally:
            counts.in_flight -= 1
        counts.served += 1
        return 200, {"ok": True}


async def _serve(port: int, delay_s: float) -> None:
    server = SlowServer(delay_s)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=4096)
    bound = listener.sockets[0].getsockname()[1]
    print(f"{_READY}http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with listener:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_server", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--delay-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    # One descriptor per open connection: take every one the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(args.port, args.delay_s))


class SlowServerProcess:
    """``python -m bench.slow_server`` as a child process, stopped by its PID."""

    def __init__(self, delay_s: float = 1.0, log_path: Path | None = None) -> None:
        self._log = log_path.open("ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.slow_server", "--delay-s", str(delay_s)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(_READY):
            self.stop()
            raise RuntimeError(f"slow server did not start: {line!r}")
        self.url = line.removeprefix(_READY).strip()

    def call_url(self, name: str = "") -> str:
        return f"{self.url}/call/{name}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as answer:
            return dict(json.load(answer))

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def wait_for(self, field: str, at_least: int, timeout_s: float) -> int:
        """Poll ``stats()[field]`` until it reaches ``at_least``; its last value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.stats()[field]
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log is not subprocess.DEVNULL:
            self._log.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
