"""The FastAPI application of ``hive api``, made by :func:`create_app` (uvicorn's factory,
so each of ``--workers`` builds its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from hive import service
from hive.api import (
    approvals,
    dead_letters,
    errors,
    health,
    metrics,
    pipelines,
    runs,
    services,
    threads,
)
from hive.api.metrics import RequestMetrics
from hive.api.middleware import BodyLimit, Guard
from hive.settings import Settings, get_settings

DESCRIPTION = """The producer API of Hive: submit runs of pipelines, read them, wait for them.

Every `/v1` call takes an API key (`hive keys create`), as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. A key acts for one tenant with one role: `viewer` reads, `producer`
also submits and cancels, `admin` also manages; an operator key acts for every tenant.
Where the server is given an identity provider's key, a JWT it signed (claims `tenant` and
`role`) is taken as a bearer token the same way. Another tenant's run answers 404, like a
run that does not exist.
"""


def _version() -> str:
    try:
        return version("hive")
    except PackageNotFoundError:
        return "0"


@asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[None]:
    """While the server runs: a submit answers once its first steps are in Redis, and their
    marks are confirmed in batches after (written out before the server stops); and a key
    revoked anywhere is dropped from this process's records as Redis tells of it."""
    service.confirm_publishes_in_batches()
    revocations = service.follow_key_revocations(get_settings())
    try:
        yield
    finally:
        await run_in_threadpool(revocations.stop)
        await run_in_threadpool(service.confirm_publishes_in_batches, False)


# FastAPI runs the sync endpoints on anyio's default thread limiter: this many at once.
SYNC_ROUTES_AT_ONCE = 40
# Beside them, the busiest routes' own threads (hive/api/threads.py); a thread of either
# pool may hold a database connection.
REQUESTS_AT_ONCE = SYNC_ROUTES_AT_ONCE + threads.THREADS


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over the process's farm (``settings``: the process's own by default)."""
    settings = settings or get_settings()
    service.serve_at_once(REQUESTS_AT_ONCE)
    app = FastAPI(
        title="Hive",
        version=_version(),
        description=DESCRIPTION,
        # The interactive pages load scripts from a CDN, which the CSP forbids.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=_serving,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(runs.router)
    app.include_router(pipelines.router)
    app.include_router(dead_letters.router)
    app.include_router(approvals.router)
    app.include_router(services.router)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    if settings.api.origins:
        # No cookies are read, so no credentials: never `*`, and nothing a browser keeps.
        # Outside BodyLimit, so that a browser can read its 413 too; inside Guard, whose
        # headers a preflight's answer gets as any other does.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            # When to come back after a 429 (or before one): none is a safelisted header.
            expose_headers=[
                "Location",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
        )
    app.add_middleware(Guard)
    app.add_middleware(RequestMetrics)  # last added, outermost: sees Guard's answers too
    return app
