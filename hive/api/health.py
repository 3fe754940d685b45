"""``/healthz``: the process answers (no key needed). ``/readyz``: PostgreSQL and Redis
answer and the database holds Hive's tables; which one does not is said by name, never by
address."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hive import service
from hive.api.models import HealthOutput
from hive.errors import HiveError, ServiceUnavailable
from hive.settings import get_settings

router = APIRouter(tags=["health"])

_SERVER_OF = {"HIVE_BROKER_URL": "redis", "HIVE_DATABASE_URL": "postgresql"}


@router.get("/healthz", response_model=HealthOutput)
async def healthz() -> HealthOutput:
    """The API process is alive."""
    # Async: it does no I/O, and a plain function would cost two hops to anyio's threads
    # and back (the call, then the answer's validation) for a constant.
    return HealthOutput(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOutput,
    responses={503: {"model": HealthOutput, "description": "A server cannot be reached."}},
)
def readyz() -> JSONResponse | HealthOutput:
    """PostgreSQL and Redis answer: the API can serve."""
    try:
        service.check_servers(get_settings())
    except HiveError as exc:
        variable = exc.variable if isinstance(exc, ServiceUnavailable) else "HIVE_DATABASE_URL"
        down = HealthOutput(status="unavailable", unavailable=[_SERVER_OF.get(variable, "server")])
        return JSONResponse(down.model_dump(), status_code=503)
    return HealthOutput(status="ready")
