"""``/v1/approvals`` and deciding them: the steps held for a person.

Reading is a viewer's right, deciding an admin's (the service layer checks both); another
tenant's approval is 404. The decision is recorded as made by the key (``key:<id>``), and
in the audit trail, whatever its outcome.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from hive import service
from hive.api.auth import AuthenticatedRoute, audited, principal
from hive.api.errors import ERROR_RESPONSES, Place, problems_at
from hive.api.models import ApprovalOutput, ApproveInput, ErrorOutput, RejectInput
from hive.service import Action, Principal
from hive.settings import get_settings

router = APIRouter(
    prefix="/v1", tags=["approvals"], responses=ERROR_RESPONSES, route_class=AuthenticatedRoute
)

_DECIDED: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOutput,
        "description": "Decided already (by whom, when), the run is past its deadline, or the "
        "input does not fit.",
    }
}


# Where each argument the service names is in the request.
_LISTING: dict[str, Place] = {"pipeline": ("query", "pipeline"), "limit": ("query", "limit")}
_DECISION: dict[str, Place] = {
    "step_id": ("path", "step_id"),
    "reason": ("body", "reason"),
    "the new input": ("body", "input"),
}


def _by(who: Principal) -> str:
    return f"key:{who.key_id}"


@router.get("/approvals", response_model=list[ApprovalOutput])
def list_approvals(
    who: Principal = Depends(principal),  # noqa: B008
    pipeline: str | None = Query(default=None, min_length=1, max_length=200),
    limit: int = Query(default=100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """Pending approvals, oldest first, without their input (read the run for it)."""
    with problems_at(_LISTING):
        approvals = service.list_approvals(
            get_settings(), who.caller, pipeline=pipeline, limit=limit
        )
    return [approval.to_json() for approval in approvals]


@router.post(
    "/runs/{run_id}/steps/{step_id:path}/approve", response_model=ApprovalOutput, responses=_DECIDED
)
def approve(
    run_id: str,
    step_id: str,
    request: Request,
    body: ApproveInput | None = None,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """Approve the step: it runs (with ``input`` instead of its own, when given)."""
    new_input = body.input if body is not None else None
    with (
        problems_at(_DECISION),
        audited(request, who, Action.APPROVAL_APPROVE, f"step:{run_id}/{step_id}") as concerning,
    ):
        decided = service.approve(
            get_settings(), who.caller, run_id, step_id, by=_by(who), new_input=new_input
        )
        concerning.tenant = decided.tenant
    return decided.to_json()


@router.post(
    "/runs/{run_id}/steps/{step_id:path}/reject", response_model=ApprovalOutput, responses=_DECIDED
)
def reject(
    run_id: str,
    step_id: str,
    body: RejectInput,
    request: Request,
    who: Principal = Depends(principal),  # noqa: B008
) -> dict[str, Any]:
    """Reject the step: it fails for good (a dead letter), and its run with it."""
    with (
        problems_at(_DECISION),
        audited(request, who, Action.APPROVAL_REJECT, f"step:{run_id}/{step_id}") as concerning,
    ):
        decided = service.reject(
            get_settings(), who.caller, run_id, step_id, reason=body.reason, by=_by(who)
        )
        concerning.tenant = decided.tenant
    return decided.to_json()
