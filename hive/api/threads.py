"""The API's own threads, for the blocking work of its busiest routes (authentication, a
submit, a read): ``await in_thread(fn, ...)`` from an async route.

FastAPI runs a plain (sync) route on anyio's thread pool, and then validates its answer
against the ``response_model`` in that pool again: three hops a request with the key's
check. An async route that calls :func:`in_thread` makes one hop for its work, and its
answer is validated on the event loop (microseconds). A hop here is cheaper too: the
executor's queue is C (anyio's worker threads wait on a ``queue.Queue`` condition, whose
notify showed in py-spy as 8-12 % of an API process's time under bench.api).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

THREADS = 40
"""As many as anyio's default limiter lets sync routes run at once."""

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(THREADS, thread_name_prefix="hive-api")
    return _executor


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on one of the API's threads, in a copy of the caller's
    context (as anyio's ``to_thread`` does)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)
