"""The httpx clients of the built-in agents that call out (``http``, ``llm``): one per thread
of each process, kept for its connections, closed when the thread is gone or the worker
shuts down.

Why one per thread: an ``httpx.Client`` shared by the 200 threads of a ``--pool threads``
worker serialises every request on httpcore's pool lock, which scans all its connections
under it: 9 to 12 ms of CPU a call against 1.1 ms for a client of the thread's own (measured;
bench/RESULTS.md). A thread only ever holds one call at a time, so its client never waits.

Bounded: the clients are as many as the threads that called out and are still alive
(the pool's threads and the agent threads of :mod:`hive.tasks.deadline`, at most twice the
pool). A thread's client is dropped once the thread is gone, the next time any thread makes
one; :func:`close_clients` closes them all (``worker_shutdown``, ``worker_process_shutdown``).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

_local = threading.local()
_lock = threading.Lock()
_ssl_held: dict[int, ssl.SSLContext] = {}


@dataclass(frozen=True)
class _Held:
    pid: int
    thread: threading.Thread
    client: httpx.Client


# Every client this process made, with its thread (a forked child drops its parent's).
_held: list[_Held] = []


def thread_client() -> httpx.Client:
    """This thread's client, made on first use and kept, so that calls to a host reuse its
    connections. One per process too: a prefork child forked after its parent made one
    makes its own, since the parent's sockets are not its to use."""
    held: _Held | None = getattr(_local, "held", None)
    pid = os.getpid()
    if held is not None and held.pid == pid and not held.client.is_closed:
        return held.client
    client = _CookielessClient(
        verify=_ssl_context(),
        follow_redirects=False,  # a redirect would carry the auth header to another host
        headers={"User-Agent": "hive"},
    )
    held = _Held(pid, threading.current_thread(), client)
    with _lock:
        gone = [h for h in _held if h.pid == pid and not h.thread.is_alive()]
        # A parent's clients are left unclosed: their sockets are the parent's.
        _held[:] = [h for h in _held if h.pid == pid and h.thread.is_alive()]
        _held.append(held)
    for old in gone:
        old.client.close()
    _local.held = held
    return client


class _NoCookies(httpx.Cookies):
    """Always empty: what an answer sets is not even read."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.Client):
    """A client that keeps no cookie: it serves every run and tenant of its thread, so a
    cookie one step's answer set must never go out with another's request. Not even read:
    httpx's reading of an answer's cookies (a ``urllib`` request built for the cookie jar,
    whatever its policy) cost 29 us of CPU a call (measured), a cookie jar refusing them all
    as much."""

    _none = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass  # httpx's constructor sets an empty jar: there is none to set


def open_clients() -> int:
    """How many clients this process holds."""
    with _lock:
        return sum(1 for h in _held if h.pid == os.getpid())


def close_clients() -> int:
    """Close every client this process made (their connections with them); return how many.
    For a worker shutting down, once its steps have finished: a thread calling out later
    makes a new one."""
    pid = os.getpid()
    with _lock:
        mine = [h for h in _held if h.pid == pid]
        _held.clear()
    for held in mine:
        try:
            held.client.close()
        except Exception:  # a connection that fails to close is gone all the same
            logger.debug("closing an HTTP client failed", exc_info=True)
    if mine:
        logger.debug("closed %d HTTP clients", len(mine))
    return len(mine)


def _ssl_context() -> ssl.SSLContext:
    """This process's SSL context, shared by its threads' clients (it is thread-safe): each
    client building its own costs 36 ms of CPU and 0.7 MiB, 7 s and 130 MiB for a thread
    pool of 200 (measured; bench/RESULTS.md)."""
    with _lock:
        held = _ssl_held.get(os.getpid())
        if held is None:
            held = _ssl_held[os.getpid()] = httpx.create_ssl_context()
        return held
