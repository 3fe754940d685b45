"""Probe health URLs, a bounded number at once, each within a timeout: Consul's HTTP check.

A 2xx answer passes, 429 (too many requests) is a warning, any other answer, or none within
the timeout, is a failure. Redirects are not followed: a 3xx is "any other answer".
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

import httpx

logger = logging.getLogger(__name__)


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Probe:
    verdict: Verdict
    output: str
    """What was found, for the operator: "HTTP 503", "no answer within 5s". Never the URL,
    which may carry a token in its query."""


def verdict_of(status_code: int) -> Verdict:
    if 200 <= status_code < 300:
        return Verdict.PASS
    if status_code == 429:
        return Verdict.WARN
    return Verdict.FAIL


_RESOLVERS = 32


def probe_all(
    urls: dict[str, str], timeout_s: float, max_at_once: int, *, start_by: float | None = None
) -> dict[str, Probe]:
    """Each key's URL probed, ``max_at_once`` at a time, in the dict's order; each probe
    gets ``timeout_s`` from when it starts, so the whole takes about
    ``ceil(len(urls) / max_at_once) * timeout_s`` at most. With ``start_by`` (a
    ``time.monotonic()`` reading), a probe whose turn comes later is not made, and its key
    is left out: the whole ends by ``start_by + timeout_s``."""
    if not urls:
        return {}
    # Host names are resolved in the loop's executor threads. Not asyncio.run's: it has
    # as few threads as CPUs plus 4 (probes would queue behind slow lookups and time out
    # unheard), and it waits for every lookup at exit (a resolver that hangs would hang
    # the sweep past its timeout). These are left to finish on their own.
    loop = asyncio.new_event_loop()
    resolvers = ThreadPoolExecutor(_RESOLVERS, thread_name_prefix="hive-probe-resolver")
    loop.set_default_executor(resolvers)
    try:
        return loop.run_until_complete(_probe_all(urls, timeout_s, max_at_once, start_by))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        resolvers.shutdown(wait=False, cancel_futures=True)
        loop.close()


async def _probe_all(
    urls: dict[str, str], timeout_s: float, max_at_once: int, start_by: float | None
) -> dict[str, Probe]:
    # The bound is the semaphore's, taken before a probe's timeout starts: an httpx pool
    # limit would queue probes behind hanging ones and time them out unheard. Without one,
    # thousands of hanging URLs would each hold a socket at once (beat's file descriptors).
    # trust_env=False: a proxy answering for an instance would misreport its health.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    turns = asyncio.Semaphore(max_at_once)
    async with httpx.AsyncClient(
        timeout=timeout_s, limits=limits, trust_env=False, follow_redirects=False
    ) as client:
        keys = list(urls)
        probes = await asyncio.gather(
            *(_probe(client, urls[k], timeout_s, turns, start_by) for k in keys)
        )
    return {k: p for k, p in zip(keys, probes, strict=True) if p is not None}


async def _probe(
    client: httpx.AsyncClient,
    url: str,
    timeout_s: float,
    turns: asyncio.Semaphore,
    start_by: float | None,
) -> Probe | None:
    async with turns:
        if start_by is not None and time.monotonic() > start_by:
            return None
        return await _probe_one(client, url, timeout_s)


async def _probe_one(client: httpx.AsyncClient, url: str, timeout_s: float) -> Probe:
    try:
        # The status line is the answer; the body is not read. asyncio.timeout bounds the whole
        # exchange, which httpx's timeouts bound only per read.
        async with asyncio.timeout(timeout_s), client.stream("GET", url) as response:
            code = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        return Probe(Verdict.FAIL, f"no answer within {timeout_s:g}s")
    except httpx.HTTPError as exc:
        return Probe(Verdict.FAIL, f"no answer: {type(exc).__name__}")
    except Exception as exc:  # any probe's own trouble is its failure, not the sweep's
        logger.debug("probe failed", exc_info=True)
        return Probe(Verdict.FAIL, f"no answer: {type(exc).__name__}")
    return Probe(verdict_of(code), f"HTTP {code}")
