"""``/v1/dead-letters``: the steps that failed for good, and replaying their runs.

Reading is a viewer's right, replaying an admin's (the service layer checks both); another
tenant's run is 404. Every replay is recorded in the audit trail, whatever its outcome.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from hive import service
from hive.api.auth import AuthenticatedRoute, audited, principal
from hive.api.errors import ERROR_RESPONSES, Place, Unprocessable, problems_at
from hive.api.models import (
    DeadLetterOutput,
    ErrorOutput,
    ReplayInput,
    ReplayOutput,
    public_error,
)
from hive.errors import InvalidArgument
from hive.service import Action, Principal
from hive.settings import get_settings

router = APIRouter(
    prefix="/v1", tags=["dead letters"], responses=ERROR_RESPONSES, route_class=AuthenticatedRoute
)


@router.get("/dead-letters", response_model=list[DeadLetterOutput])
def list_dead_letters(
    who: Principal = Depends(principal),  # noqa: B008
    pipeline: str | None = Query(default=None, min_length=1, max_length=200),
    since: AwareDatetime | None = None,
    limit: int = Query(default=100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """Dead letters not yet replayed, newest first (the objects of `hive dlq list --json`)."""
    try:
        letters = service.list_dead_letters(
            get_settings(), who.caller, pipeline=pipeline, since=since, limit=limit
        )
    except InvalidArgument as exc:
        # Each problem starts with the parameter it names.
        problems = [("query", p.split(" ", 1)[0], p) for p in exc.problems]
        raise Unprocessable(problems) from None
    return [{**letter.to_json(), "error": public_error(letter.error)} for letter in letters]


# The service's names of replay's arguments, as the body has them.
_REPLAY_PLACES: dict[str, Place] = {"deadline": ("body", "deadline_s")}


@router.post(
    "/dead-letters/{run_id}/replay",
    response_model=ReplayOutput,
    responses={
        409: {
            "model": ErrorOutput,
            "description": "The run is not failed, it is past its deadline and no deadline_s "
            "gives it a new one, or the edited input does not fit.",
        }
    },
)
def replay_run(
    run_id: str,
    request: Request,
    body: ReplayInput | None = None,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """Reopen a failed run: its failed steps get fresh retries (the one failed step with
    ``input`` instead, when given); steps that succeeded are not run again. With
    ``deadline_s`` the run's deadline becomes that many seconds from now: a run past its
    deadline is replayed only so."""
    settings = get_settings()
    new_input = body.input if body is not None else None
    deadline = body.deadline_s if body is not None else None
    with (
        problems_at(_REPLAY_PLACES),
        audited(request, who, Action.RUN_REPLAY, f"run:{run_id}") as concerning,
    ):
        sent = service.replay_run(settings, who.caller, run_id, new_input, deadline=deadline)
        state = service.get_run_state(settings, who.caller, run_id)
        concerning.tenant = state.tenant
    return {"id": str(state.id), "sent": sent, "status": state.status}
