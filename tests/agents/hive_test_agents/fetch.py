"""``fetch``: one HTTP GET, for the tests and the benchmark of many steps in flight.

It stands in for the built-in ``http`` agent until that one lands; like it, it waits on an
outside call and computes nothing. One ``httpx.Client`` per thread, all sharing one SSL
context: with 200 threads on one client, httpcore's pool lock cost about 9 ms of CPU per
call where a client per thread costs 1.3 ms (measured; see bench/RESULTS.md), and each
client's own SSL context would cost 36 ms and 0.7 MiB to build.
"""

from __future__ import annotations

import os
import ssl
import threading

import httpx
from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import Agent, AgentContext, AgentOptions
from hive.errors import PermanentError, RetryableError

__all__ = ["FetchAgent", "FetchInput", "FetchOutput", "thread_client"]

_local = threading.local()
_ssl: dict[int, ssl.SSLContext] = {}
_lock = threading.Lock()


def thread_client() -> httpx.Client:
    """This thread's client, built on first use, with this process's SSL context."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        with _lock:  # one context per process: a pool process builds its own after forking
            context = _ssl.get(os.getpid()) or _ssl.setdefault(
                os.getpid(), httpx.create_ssl_context()
            )
        client = _local.client = httpx.Client(verify=context, trust_env=False)
    return client


class FetchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    timeout_s: float = Field(default=30.0, gt=0)


class FetchOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: int


class FetchAgent(Agent[FetchInput, FetchOutput]):
    """GETs ``url``; a connection error or a 5xx is retryable, another 4xx permanent. Logs
    its run id before and after the call (the log tests match it to the record's ids)."""

    name = "fetch"
    version = "1"
    input_model = FetchInput
    output_model = FetchOutput
    options = AgentOptions(timeout=60.0, max_retries=2, retry_backoff=0.1, retry_backoff_max=1.0)

    def run(self, data: FetchInput, ctx: AgentContext) -> FetchOutput:
        """One GET of ``data.url``; its status."""
        ctx.logger.info("fetch: calling for run %s", ctx.run_id)
        try:
            answer = thread_client().get(data.url, timeout=data.timeout_s)
        except httpx.TransportError as exc:
            raise RetryableError(f"fetch: {type(exc).__name__}") from exc
        ctx.logger.info("fetch: answered %d for run %s", answer.status_code, ctx.run_id)
        if answer.status_code >= 500:
            raise RetryableError(f"fetch: status {answer.status_code}")
        if answer.status_code >= 400:
            raise PermanentError(f"fetch: status {answer.status_code}")
        return FetchOutput(status=answer.status_code)
