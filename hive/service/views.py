"""What the service layer hands back: plain, JSON-ready snapshots, never database rows.

The field names are the wire names of the Python client, ``--json`` and the HTTP API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class StepView:
    step_id: str
    agent: str
    status: str
    attempts: int
    needs: list[str]
    input: Any
    output: Any
    error: dict[str, Any] | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None

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
        }


@dataclass(frozen=True)
class RunView:
    """A snapshot of a run and its steps."""

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
    steps: list[StepView]

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
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True)
class RunState:
    """A run's status and result, without its steps: what a waiting caller polls."""

    id: uuid.UUID
    status: str
    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Submitted:
    """A submit's answer: the run, and whether this call created it (False: an earlier
    submit with the same idempotency key and tenant did)."""

    run_id: uuid.UUID
    created: bool


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


def run_view(run: Any, steps: list[Any]) -> RunView:
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
        steps=[
            StepView(
                step_id=s.step_id,
                agent=s.agent,
                status=s.status,
                attempts=s.attempt,
                needs=list(s.needs),
                input=s.input,
                output=s.output,
                error=s.error,
                worker=s.worker,
                started_at=s.started_at,
                finished_at=s.finished_at,
            )
            for s in steps
        ],
    )


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
