"""The API's own Prometheus metrics: every request counted and timed by route template,
method and status, and ``GET /metrics`` serving them (no key, like ``/healthz``: counts by
route say nothing of any tenant).

Labels stay bounded: a request's route is the template it matched (``/v1/runs/{run_id}``),
never its path, and ``other`` when it matched none (an unknown path, or a body refused
before routing); a method outside the standard ones is ``other`` too.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hive.api.middleware import App, Message, Receive, Scope, Send
from hive.exposition import latest
from hive.metrics import API_REQUEST_DURATION, API_REQUESTS

router = APIRouter(tags=["health"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics() -> Response:
    """Request counts and latencies of every API process of this server, summed."""
    body, content_type = await run_in_threadpool(latest)
    return Response(body, media_type=content_type)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    # The template as the OpenAPI document writes it: ``{name}``, not ``{name:path}``.
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else "other"


class RequestMetrics:
    """Outermost: counts and times every answer, whatever produced it."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope.get("method", "")
            labels = (_route(scope), method if method in _METHODS else "other", str(status))
            API_REQUESTS.labels(*labels).inc()
            API_REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)
