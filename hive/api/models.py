"""The API's wire models: requests refuse unknown fields, responses carry the field names of
the Python client's views and of ``--json`` (each built from a view's ``to_json()``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hive.statuses import RunStatus, ServiceStatus


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SubmitRunInput(_Wire):
    """A run to start. The same ``idempotency_key`` (per tenant) gives back the same run."""

    pipeline: str = Field(min_length=1, max_length=200, description="The pipeline's name.")
    input: Any = Field(description="The run input, checked against the pipeline's input_schema.")
    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Whose run it is: a tenant's key may only name its own tenant.",
    )
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    deadline_s: float | None = Field(
        default=None, gt=0, description="Seconds; a run not finished by then ends expired."
    )
    budget_usd: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000_000,
        description="The run's cost budget in USD, in place of its pipeline's: an LLM step "
        "whose estimated cost would pass it does not start, and the run ends budget_exceeded.",
    )


# Failures the farm records of itself, whose messages name its machines (a worker's
# hostname, the broker's host:port): a tenant is told what happened, not where.
_FARM_FAILURES = {
    "dispatch_error": "the farm could not send the step to its workers",
    "worker_lost": "the worker running the step was lost",
    "lease_expired": "the worker running the step stopped answering before its lease ran out",
}


def public_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A step's (or run's) recorded error as the API shows it: without the worker's
    ``traceback``, whose file paths and source lines are the farm's, not the caller's, and
    with a failure of the farm's own told in words of its kind (the operator reads both
    with ``hive runs show`` and ``hive dlq show``)."""
    if error is None:
        return None
    farm_message = _FARM_FAILURES.get(str(error.get("type")))
    if farm_message is None and "traceback" not in error:
        return error
    shown = {name: value for name, value in error.items() if name != "traceback"}
    if farm_message is not None:
        shown["message"] = farm_message
    return shown


def public_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON with its errors as :func:`public_error` shows them, and no step's
    ``worker`` (a host name of the farm's)."""
    run["error"] = public_error(run.get("error"))
    for step in run.get("steps") or []:
        step["error"] = public_error(step["error"])
        step["worker"] = None
    return run


class StepOutput(_Wire):
    step_id: str
    agent: str
    status: str
    attempts: int
    needs: list[str]
    input: Any
    output: Any
    error: dict[str, Any] | None
    worker: str | None = Field(
        description="Always null over the API: which of the farm's hosts ran the step is the "
        "operator's to see (`hive runs show --json`)."
    )
    started_at: str | None
    finished_at: str | None
    usage: dict[str, float | int] | None
    cost: float | None
    deferrals: int


class RunOutput(_Wire):
    """A run; ``steps`` is null in a listing (read the run for its steps). Times are ISO 8601."""

    id: str
    pipeline: str
    pipeline_version: int
    tenant: str | None
    priority: str
    status: RunStatus
    input: Any
    output: Any
    error: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    trace_id: str | None
    usage: dict[str, float | int] | None
    cost: float | None
    budget_usd: float | None = Field(description="The run's cost budget; null: none.")
    budget_spent_usd: float | None = Field(
        description="What its steps spent against the budget; null without one."
    )
    steps: list[StepOutput] | None


class RunPageOutput(_Wire):
    runs: list[RunOutput]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class CancelOutput(_Wire):
    id: str
    cancelled: bool = Field(description="False: the run had already ended.")
    status: RunStatus


class PipelineStepOutput(_Wire):
    step_id: str
    agent: str
    needs: list[str]
    input: dict[str, Any]
    options: dict[str, Any]


class PipelineOutput(_Wire):
    """A pipeline: its input JSON Schema and its steps, whose ``needs`` make the DAG."""

    name: str
    version: int
    description: str | None
    source: str = Field(description="The name of the pipeline's file.")
    input_schema: dict[str, Any]
    steps: list[PipelineStepOutput]
    output: Any
    budget_usd: float | None = Field(description="Each run's cost budget; null: none.")


class ProblemOutput(_Wire):
    """One thing wrong with a request: where (``in`` the body, the query or the path, at
    ``path``, dotted: ``input.items.2.name``) and what."""

    in_: Literal["body", "query", "path", "header"] = Field(alias="in")
    path: str
    message: str

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorDetail(_Wire):
    type: str
    message: str
    problems: list[ProblemOutput] | None = None


class ErrorOutput(_Wire):
    error: ErrorDetail


class HealthOutput(_Wire):
    status: str
    unavailable: list[str] | None = None


class DeadLetterOutput(_Wire):
    """A step that failed for good: its error, attempts and input (of `hive dlq list --json`)."""

    run_id: str
    step_id: str
    pipeline: str
    agent: str
    attempts: int
    error: dict[str, Any]
    input: Any
    created_at: str
    replayed_at: str | None


class ReplayInput(_Wire):
    input: dict[str, Any] | None = Field(
        default=None,
        description="An edited input for the one failed step (its pinned fields unchanged).",
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds from now: the run's new deadline, as submit's deadline_s; "
        "needed to replay a run past its deadline. Without it, the run keeps its own.",
    )


class ReplayOutput(_Wire):
    id: str
    sent: list[str] = Field(description="The steps sent again now.")
    status: RunStatus


class ApprovalEventOutput(_Wire):
    kind: str
    detail: dict[str, Any]
    at: str


class ApprovalOutput(_Wire):
    """A step held for a person's decision; ``input`` and ``history`` are null in a listing."""

    run_id: str
    step_id: str
    pipeline: str
    tenant: str | None
    agent: str
    status: str
    source: str
    reason: str
    requested_at: str
    timeout_at: str | None
    timeout_action: str | None
    decided_at: str | None
    decided_by: str | None
    decision_reason: str | None
    input_edited: bool
    input: Any
    history: list[ApprovalEventOutput] | None


class ApproveInput(_Wire):
    input: dict[str, Any] | None = Field(
        default=None, description="Run the step with this input instead (checked by its agent)."
    )


class RejectInput(_Wire):
    reason: str = Field(min_length=1, max_length=4000, description="Why; kept with the decision.")


class RegisterServiceInput(_Wire):
    """An instance of a service agents call. Registering an ``id`` again updates it."""

    name: str = Field(min_length=1, max_length=200, description="The service's name.")
    url: str = Field(min_length=1, max_length=2000)
    id: str | None = Field(default=None, min_length=1, max_length=200)
    health_url: str | None = Field(default=None, min_length=1, max_length=2000)
    ttl_s: float | None = Field(default=None, gt=0, description="Critical without a heartbeat.")
    deregister_after_s: float | None = Field(default=None, gt=0)
    meta: dict[str, str] | None = None


class ServiceInstanceOutput(_Wire):
    id: str
    service: str
    tenant: str | None
    url: str
    health_url: str | None
    ttl_s: float | None
    deregister_after_s: float | None
    meta: dict[str, str]
    status: ServiceStatus
    failures: int
    last_check_at: str | None
    last_check_output: str | None
    last_heartbeat_at: str | None
    registered_at: str
    critical_since: str | None
