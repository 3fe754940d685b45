"""The API's wire models: requests refuse unknown fields, responses carry the field names of
the Python client's views and of ``--json`` (each built from a view's ``to_json()``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hive.statuses import RunStatus


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


class StepOutput(_Wire):
    step_id: str
    agent: str
    status: str
    attempts: int
    needs: list[str]
    input: Any
    output: Any
    error: dict[str, Any] | None
    worker: str | None
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
    source: str
    input_schema: dict[str, Any]
    steps: list[PipelineStepOutput]
    output: Any


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
