"""What the service layer hands back: plain, JSON-ready snapshots, never database rows.

The field names are the wire names of the Python client, ``--json`` and the HTTP API: one
JSON shape per kind of object, from its ``to_json()``, wherever it is shown or listed. Ids
are strings in JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hive.errors import RunFailed
from hive.statuses import RunStatus, ServiceStatus

if TYPE_CHECKING:
    from hive.agents.base import Agent
    from hive.pipelines import Pipeline


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class StepView:
    step_id: str
    agent: str
    status: str
    attempts: int
    """Attempts that ran (a deferral is none: see ``deferrals``)."""
    needs: list[str]
    input: Any
    output: Any
    error: dict[str, Any] | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    usage: dict[str, float | int] | None = None
    """What the step's attempts used (tokens, calls), summed; None if nothing reported."""
    cost: float | None = None
    """What that cost by the price table; None if no attempt had a priced usage."""
    deferrals: int = 0
    """Times the step was sent back to wait (a limit, an open breaker) without running."""

    def to_json(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "agent": self.agent,
            "status": self.status,
            "attempts": self.attempts,
            "needs": self.needs,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "worker": self.worker,
            "started_at": _ts(self.started_at),
            "finished_at": _ts(self.finished_at),
            "usage": self.usage,
            "cost": self.cost,
            "deferrals": self.deferrals,
        }


@dataclass(frozen=True)
class RunView:
    """A snapshot of a run and its steps.

    ``steps`` is None in a listing (:func:`hive.service.list_runs`), which reads no step:
    ``null`` in JSON, not ``[]``, since every run has steps. Read one run for its steps.
    """

    id: str
    pipeline: str
    pipeline_version: int
    tenant: str | None
    priority: str
    status: str
    input: Any
    output: Any
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepView] | None
    trace_id: str | None = None
    """W3C trace id, in every log record of the run (None for runs stored before 0009)."""
    usage: dict[str, float | int] | None = None
    """What the run's steps used (tokens, calls), every attempt summed; ``{}`` if nothing
    was reported."""
    cost: float | None = None
    """What that cost by the price table; None if nothing was priced."""
    budget_usd: float | None = None
    """The run's cost budget (its submit's or its pipeline's); None: none."""
    budget_spent_usd: float | None = None
    """What its steps spent against the budget (settled); None without a budget."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "pipeline_version": self.pipeline_version,
            "tenant": self.tenant,
            "priority": self.priority,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "created_at": _ts(self.created_at),
            "started_at": _ts(self.started_at),
            "finished_at": _ts(self.finished_at),
            "trace_id": self.trace_id,
            "usage": self.usage,
            "cost": self.cost,
            "budget_usd": self.budget_usd,
            "budget_spent_usd": self.budget_spent_usd,
            "steps": None if self.steps is None else [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True)
class RunState:
    """A run's status and result, without its steps: what a waiting caller polls."""

    id: uuid.UUID
    status: str
    output: Any
    error: dict[str, Any] | None
    tenant: str | None = None
    """Whose run it is (None: no tenant's)."""


def final_output(state: RunState) -> Any:
    """The output of a run that ended: the one rule of what waiting for a run returns,
    whichever way (directly or over HTTP) it was waited for.

    Raises:
        RunFailed: the run ended failed, cancelled, expired or budget_exceeded; names the
            failed step.
    """
    if state.status == RunStatus.SUCCEEDED:
        return state.output
    error = state.error or {}
    raise RunFailed(str(state.id), state.status, error.get("step_id"), error)


def wait_timed_out(run_id: uuid.UUID, status: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"run {run_id} still {status} after {timeout}s")


@dataclass(frozen=True)
class Submitted:
    """A submit's answer: the run, and whether this call created it (False: an earlier
    submit with the same idempotency key and tenant did)."""

    run_id: uuid.UUID
    created: bool
    as_stored: Callable[[], RunView] | None = field(default=None, compare=False, repr=False)
    """The run as this call stored it (queued, every step pending), made without reading
    it back; None when this call did not store it all in one go (an earlier submit did, a
    lost answer was retried, or steps were held for approval at once)."""


@dataclass(frozen=True)
class DeadLetterView:
    run_id: uuid.UUID
    step_id: str
    pipeline: str
    agent: str
    attempts: int
    error: dict[str, Any]
    input: Any
    created_at: datetime
    replayed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "step_id": self.step_id,
            "pipeline": self.pipeline,
            "agent": self.agent,
            "attempts": self.attempts,
            "error": self.error,
            "input": self.input,
            "created_at": _ts(self.created_at),
            "replayed_at": _ts(self.replayed_at),
        }


@dataclass(frozen=True)
class DeadLetterReport:
    """A failed run, with its steps, and its dead letters: what ``hive dlq show`` prints."""

    run: RunView
    dead_letters: list[DeadLetterView]

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run.to_json(),
            "dead_letters": [letter.to_json() for letter in self.dead_letters],
        }


@dataclass(frozen=True)
class PipelineStepView:
    step_id: str
    agent: str
    needs: list[str]
    input: dict[str, Any]
    options: dict[str, Any]
    """The agent's options with the step's overrides."""

    def to_json(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "agent": self.agent,
            "needs": self.needs,
            "input": self.input,
            "options": self.options,
        }


@dataclass(frozen=True)
class PipelineView:
    """A loaded pipeline as its callers see it."""

    name: str
    version: int
    description: str | None
    source: str
    input_schema: dict[str, Any]
    steps: list[PipelineStepView]
    output: Any
    """The template of the run's output; None: each terminal step's output by step id."""
    budget_usd: float | None = None
    """Each run's cost budget unless its submit sets one; None: none."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "source": self.source,
            "input_schema": self.input_schema,
            "steps": [step.to_json() for step in self.steps],
            "output": self.output,
            "budget_usd": self.budget_usd,
        }


@dataclass(frozen=True)
class AgentView:
    """An installed agent: what a pipeline step may name, and how its steps are run."""

    name: str
    version: str
    options: dict[str, Any]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]

    @property
    def queue(self) -> str:
        return str(self.options["queue"])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "options": self.options,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }


def pipeline_view(pipeline: Pipeline) -> PipelineView:
    return PipelineView(
        name=pipeline.name,
        version=pipeline.version,
        description=pipeline.description,
        source=pipeline.source,
        input_schema=pipeline.input_schema,
        steps=[
            PipelineStepView(
                step_id=step.id,
                agent=step.agent,
                needs=list(step.needs),
                input=step.input,
                options=step.options.model_dump(mode="json"),
            )
            for step in pipeline.steps
        ],
        output=pipeline.output,
        budget_usd=pipeline.budget_usd,
    )


def agent_view(agent: type[Agent[Any, Any]]) -> AgentView:
    return AgentView(
        name=agent.name,
        version=agent.version,
        options=agent.options.model_dump(mode="json"),
        input_schema=agent.input_model.model_json_schema(),
        output_schema=agent.output_model.model_json_schema(),
    )


def run_view(
    run: Any,
    steps: list[Any] | None,
    usage: dict[str, dict[str, float | int]] | None = None,
    *,
    total: dict[str, float | int] | None = None,
) -> RunView:
    """``usage``: step id → what it used (:func:`hive.db.usage.run_usage`), read with the
    steps; ``total``: the run's sum, given instead in a listing (which reads no step)."""
    usage = usage or {}
    if total is None:
        total = {}
        for step_usage in usage.values():
            for key, value in step_usage.items():
                total[key] = total.get(key, 0) + value
    run_usage, run_cost = split_cost(total)
    return RunView(
        id=str(run.id),
        pipeline=run.pipeline,
        pipeline_version=run.pipeline_version,
        tenant=run.tenant,
        priority=run.priority,
        status=run.status,
        input=run.input,
        output=run.output,
        error=run.error,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        trace_id=run.trace_id,
        usage=run_usage,
        cost=run_cost,
        budget_usd=None if run.budget_usd is None else float(run.budget_usd),
        budget_spent_usd=None if run.budget_usd is None else float(run.budget_spent_usd),
        steps=None
        if steps is None
        else [
            StepView(
                step_id=s.step_id,
                agent=s.agent,
                status=s.status,
                attempts=s.attempt - s.deferrals,
                needs=list(s.needs),
                input=s.input,
                output=s.output,
                error=s.error,
                worker=s.worker,
                started_at=s.started_at,
                finished_at=s.finished_at,
                **_step_usage(usage.get(s.step_id)),
                deferrals=s.deferrals,
            )
            for s in steps
        ],
    )


def split_cost(usage: dict[str, float | int]) -> tuple[dict[str, float | int], float | None]:
    """Usage counters without ``cost``, and the cost (None when there is none)."""
    counters = {key: value for key, value in usage.items() if key != "cost"}
    cost = usage.get("cost")
    return counters, None if cost is None else round(float(cost), 9)


def _step_usage(usage: dict[str, float | int] | None) -> dict[str, Any]:
    if not usage:
        return {"usage": None, "cost": None}
    counters, cost = split_cost(usage)
    return {"usage": counters, "cost": cost}


def dead_letter_view(row: Any) -> DeadLetterView:
    return DeadLetterView(
        run_id=row.run_id,
        step_id=row.step_id,
        pipeline=row.pipeline,
        agent=row.agent,
        attempts=row.attempts,
        error=row.error,
        input=row.input,
        created_at=row.created_at,
        replayed_at=row.replayed_at,
    )


@dataclass(frozen=True)
class ApprovalEvent:
    """One request or decision of an approval: ``kind`` is ``approval_requested``,
    ``approval_approved``, ``approval_rejected``, ``approval_timed_out`` or
    ``approval_cancelled``; ``detail`` says who (``by``) and why."""

    kind: str
    detail: dict[str, Any]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "at": _ts(self.at)}


@dataclass(frozen=True)
class ApprovalView:
    """A step held for a person's decision, and the decision once made.

    ``input`` and ``history`` are None in a listing (the input may hold personal data):
    read one approval for them.
    """

    run_id: uuid.UUID
    step_id: str
    pipeline: str
    tenant: str | None
    agent: str
    status: str
    """``pending``, ``approved``, ``rejected`` or ``cancelled`` (its run stopped)."""
    source: str
    """``required`` (the step's ``approval`` option) or ``input_guard`` (an escalation)."""
    reason: str
    requested_at: datetime
    timeout_at: datetime | None
    timeout_action: str | None
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    input_edited: bool
    input: Any = None
    """The input the step would run with, as resolved when it asked."""
    history: list[ApprovalEvent] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "step_id": self.step_id,
            "pipeline": self.pipeline,
            "tenant": self.tenant,
            "agent": self.agent,
            "status": self.status,
            "source": self.source,
            "reason": self.reason,
            "requested_at": _ts(self.requested_at),
            "timeout_at": _ts(self.timeout_at),
            "timeout_action": self.timeout_action,
            "decided_at": _ts(self.decided_at),
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "input_edited": self.input_edited,
            "input": self.input,
            "history": None if self.history is None else [e.to_json() for e in self.history],
        }


@dataclass(frozen=True)
class RunPage:
    """A page of a listing: ``next_cursor`` asks for the next one (None: this is the last)."""

    runs: list[RunView]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"runs": [run.to_json() for run in self.runs], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class ServiceInstanceView:
    """A registered instance of a service and its health."""

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
    last_check_at: datetime | None
    last_check_output: str | None
    last_heartbeat_at: datetime
    registered_at: datetime
    critical_since: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "tenant": self.tenant,
            "url": self.url,
            "health_url": self.health_url,
            "ttl_s": self.ttl_s,
            "deregister_after_s": self.deregister_after_s,
            "meta": self.meta,
            "status": self.status.value,
            "failures": self.failures,
            "last_check_at": _ts(self.last_check_at),
            "last_check_output": self.last_check_output,
            "last_heartbeat_at": _ts(self.last_heartbeat_at),
            "registered_at": _ts(self.registered_at),
            "critical_since": _ts(self.critical_since),
        }
