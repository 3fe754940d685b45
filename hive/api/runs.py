"""``/v1/runs``: submit, read, list a page at a time, cancel, and wait for a run.

Each route authenticates (``principal``), calls one service operation with the key's
caller, and serialises its view. Submit and cancel are recorded in the audit trail
whatever their outcome.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from hive import service
from hive.api.auth import AuthenticatedRoute, audit, client_address, principal
from hive.api.errors import ERROR_RESPONSES, Place, Unprocessable, input_problems, located
from hive.api.models import CancelOutput, RunOutput, RunPageOutput, SubmitRunInput, public_run
from hive.api.threads import in_thread
from hive.errors import InputError, InvalidArgument, UnknownPipeline
from hive.service import Action, Outcome, Principal
from hive.settings import get_settings
from hive.statuses import FINAL_RUN_STATUSES, RunStatus

router = APIRouter(
    prefix="/v1", tags=["runs"], responses=ERROR_RESPONSES, route_class=AuthenticatedRoute
)

WAIT_MAX_S = 60.0
"""The longest one long poll holds its request."""


def _location(run_id: object) -> str:
    return f"/v1/runs/{run_id}"


@router.post(
    "/runs",
    status_code=202,
    response_model=RunOutput,
    responses={
        200: {"model": RunOutput, "description": "The run this idempotency key started."},
        202: {"description": "Started: the run as stored (queued), its address in `Location`."},
    },
)
async def submit_run(
    body: SubmitRunInput,
    request: Request,
    response: Response,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """Start a run of a pipeline. The input is checked against the pipeline's input_schema
    before anything is stored. The same ``idempotency_key`` with the same pipeline and input
    gives back the run it started (200); with another pipeline or input it is a 422."""
    # Async, its work on the API's threads: one hop (hive/api/threads.py).
    submitted = await in_thread(_submit, body, request, who)
    response.headers["Location"] = _location(submitted["id"])
    if not submitted.pop("created"):
        response.status_code = 200
    return submitted


# The service's names of submit's arguments, as the body has them.
_SUBMIT_PLACES: dict[str, Place] = {
    name: ("body", field)
    for name, field in [("tenant", "tenant"), ("idempotency_key", "idempotency_key"),
                        ("deadline", "deadline_s"), ("budget_usd", "budget_usd")]
}  # fmt: skip


def _submit(body: SubmitRunInput, request: Request, who: Principal) -> dict[str, Any]:
    """The run as stored (its JSON), with ``created``: whether this call stored it."""
    settings = get_settings()
    try:
        submitted = service.submit(
            settings, who.caller, body.pipeline, body.input, tenant=body.tenant,
            priority=body.priority, idempotency_key=body.idempotency_key,
            deadline=body.deadline_s, budget_usd=body.budget_usd,
            max_in_flight=settings.api.max_runs_in_flight,
            audited_by=service.AuditedBy(who.key_id, client_address(request)),
        )  # fmt: skip
    except Exception as exc:
        audit(request, who, Action.RUN_SUBMIT, f"pipeline:{body.pipeline}", service.outcome_of(exc),
              body.tenant)  # fmt: skip
        if isinstance(exc, UnknownPipeline):
            raise Unprocessable([("body", "pipeline", str(exc))]) from None
        if isinstance(exc, InputError):
            raise Unprocessable(input_problems(exc)) from None
        if isinstance(exc, InvalidArgument):
            raise Unprocessable(located(exc.problems, _SUBMIT_PLACES)) from None
        raise
    if not submitted.created:
        # A run this call created was recorded (ok) by its own insert.
        audit(request, who, Action.RUN_SUBMIT, f"run:{submitted.run_id}", Outcome.EXISTING,
              body.tenant)  # fmt: skip
    # The run as stored (queued) is the answer, not read back: a worker may already be on
    # it, which GET shows; only a run this call did not store whole is read.
    if submitted.as_stored is not None:
        view = submitted.as_stored()
    else:
        view = service.get_run(settings, who.caller, submitted.run_id)
    return {**public_run(view.to_json()), "created": submitted.created}


@router.get("/runs/{run_id}", response_model=RunOutput)
async def get_run(run_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:  # noqa: B008
    """The run and its steps."""
    view = await in_thread(service.get_run, get_settings(), who.caller, run_id)
    return public_run(view.to_json())


@router.get("/runs", response_model=RunPageOutput)
def list_runs(
    who: Principal = Depends(principal),  # noqa: B008
    status: RunStatus | None = None,
    pipeline: str | None = Query(default=None, min_length=1, max_length=200),
    limit: int = Query(default=20, ge=1, le=1000),
    cursor: str | None = Query(default=None, max_length=500),
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
) -> dict[str, Any]:
    """The key's runs, newest first, without their steps, a page at a time: pass the
    answer's ``next_cursor`` as ``cursor`` (with the same filters). Runs submitted meanwhile
    never shift a page. ``created_after`` (inclusive) and ``created_before`` are ISO 8601
    times with a zone."""
    try:
        page = service.list_runs_page(
            get_settings(), who.caller, status=status and status.value, pipeline=pipeline,
            limit=limit, cursor=cursor, created_after=created_after,
            created_before=created_before,
        )  # fmt: skip
    except InvalidArgument as exc:
        raise Unprocessable([("query", _parameter(p), p) for p in exc.problems]) from None
    return page.to_json()


_LISTING_PARAMETERS = ("cursor", "pipeline", "status", "limit", "created_after", "created_before")


def _parameter(problem: str) -> str:
    """The query parameter a service problem names (each one starts with it)."""
    first = problem.split(" ", 1)[0]
    return first if first in _LISTING_PARAMETERS else ""


@router.post("/runs/{run_id}/cancel", response_model=CancelOutput)
def cancel_run(
    run_id: str,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """Cancel a run: no new step starts, running steps are revoked. ``cancelled`` is false
    when the run had already ended."""
    settings = get_settings()
    try:
        cancelled = service.cancel_run(settings, who.caller, run_id)
    except Exception as exc:
        audit(request, who, Action.RUN_CANCEL, f"run:{run_id}", service.outcome_of(exc))
        raise
    state = service.get_run_state(settings, who.caller, run_id)
    audit(request, who, Action.RUN_CANCEL, f"run:{state.id}", Outcome.OK if cancelled else
          Outcome.EXISTING, state.tenant)  # fmt: skip
    return {"id": str(state.id), "cancelled": cancelled, "status": state.status}


@router.get("/runs/{run_id}/wait", response_model=RunOutput)
async def wait_for_run(
    run_id: str,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
    timeout_s: float = Query(default=30.0, gt=0, le=WAIT_MAX_S),
) -> dict[str, Any]:
    """Hold the request until the run ends or ``timeout_s`` passes (at most 60), then
    answer the run as it is: look at its ``status`` to tell which."""
    # Waits on the event loop, not in a thread: a thread would be held for the whole poll,
    # and the pool's 40 would let 40 waiting clients stall every other request.
    settings = get_settings()
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        state = await run_in_threadpool(service.get_run_state, settings, who.caller, run_id)
        if state.status in FINAL_RUN_STATUSES or time.monotonic() >= deadline:
            break
        if await request.is_disconnected():
            break
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 1.5, 0.5)
    view = await run_in_threadpool(service.get_run, settings, who.caller, run_id)
    return public_run(view.to_json())
