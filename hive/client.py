"""The producer API: submit runs, look at them, wait for them.

>>> from hive import Client
>>> run = Client().submit("doc-triage", {"text": "Call me at 415-555-0100"})
>>> run.wait(timeout=30)
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError

from hive.agents.registry import default_registry
from hive.db import runs as run_store
from hive.db.direct import DirectCursor
from hive.db.engine import get_engine, unavailable
from hive.db.retrying import on_direct_cursor
from hive.errors import RunFailed, RunNotFound, UnknownPipeline
from hive.pipelines import Pipeline, load_pipelines, validate_run_input
from hive.settings import Settings, get_settings
from hive.statuses import FINAL_RUN_STATUSES
from hive.submit import new_run_id, output_spec, plan_steps
from hive.tasks.app import PRIORITIES
from hive.tasks.cancel import stop_run
from hive.tasks.dispatch import dispatch_new_run

logger = logging.getLogger(__name__)


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
        def ts(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

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
            "created_at": ts(self.created_at),
            "started_at": ts(self.started_at),
            "finished_at": ts(self.finished_at),
            "steps": [
                {
                    "step_id": s.step_id,
                    "agent": s.agent,
                    "status": s.status,
                    "attempts": s.attempts,
                    "needs": s.needs,
                    "input": s.input,
                    "output": s.output,
                    "error": s.error,
                    "worker": s.worker,
                    "started_at": ts(s.started_at),
                    "finished_at": ts(s.finished_at),
                }
                for s in self.steps
            ],
        }


class Run:
    """A handle on a submitted run."""

    def __init__(self, client: Client, run_id: uuid.UUID) -> None:
        self._client = client
        self.id = run_id

    def __repr__(self) -> str:
        return f"<Run {self.id}>"

    def status(self) -> str:
        return str(self._client.run_row(self.id).status)

    def view(self) -> RunView:
        return self._client.get(self.id)

    def wait(self, timeout: float | None = None, poll_s: float = 0.02) -> Any:
        """Block until the run ends and return its output.

        Raises:
            RunFailed: the run ended failed, cancelled or expired; names the failed step.
            TimeoutError: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll_s
        while True:
            # The run's row alone: a run of a thousand steps is polled as cheaply as one.
            run = self._client.run_row(self.id)
            if run.status in FINAL_RUN_STATUSES:
                if run.status == "succeeded":
                    return run.output
                error = run.error or {}
                raise RunFailed(str(self.id), run.status, error.get("step_id"), error)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} still {run.status} after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


class Client:
    """Submit and inspect runs. Reads settings from the environment unless given."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._pipelines: dict[str, Pipeline] | None = None

    def pipelines(self) -> dict[str, Pipeline]:
        if self._pipelines is None:
            self._pipelines = load_pipelines(self.settings.pipelines.dir, default_registry())
        return self._pipelines

    def pipeline(self, name: str) -> Pipeline:
        known = self.pipelines()
        if name not in known:
            raise UnknownPipeline(name, list(known))
        return known[name]

    def submit(
        self,
        pipeline: str,
        input: Any,
        *,
        tenant: str | None = None,
        priority: str = "normal",
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Run:
        """Validate ``input`` against the pipeline's input_schema, store the run and its steps
        in one transaction, then send its first steps.

        Args:
            pipeline: the pipeline's name.
            input: the run input, checked against the pipeline's ``input_schema``.
            tenant: who the run belongs to.
            priority: ``low``, ``normal``, ``high`` or ``critical``.
            idempotency_key: the same key and tenant always give back the same run.
            deadline: seconds; a run not finished by then ends ``expired``.

        Raises:
            UnknownPipeline: no pipeline of that name (lists the known ones).
            InputError: the input does not fit; names each field. Nothing is stored or sent.
            ValueError: an unknown priority.
            ServiceUnavailable: PostgreSQL cannot be reached.
        """
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
        if deadline is not None and deadline <= 0:
            raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}")
        spec = self.pipeline(pipeline)
        validate_run_input(spec, input)
        run_id = new_run_id()
        plan = plan_steps(spec)
        publication = dispatch_new_run(run_id, plan, priority)

        def store(cursor: DirectCursor) -> uuid.UUID:
            return run_store.insert_run(
                cursor,
                run_id=run_id,
                pipeline=spec.name,
                pipeline_version=spec.version,
                tenant=tenant,
                priority=priority,
                run_input=input,
                output_spec=output_spec(spec),
                steps=plan,
                sent=publication.step_ids,
                idempotency_key=idempotency_key,
                deadline_s=deadline,
            )

        # One statement, its own transaction. Not retried: the caller hears at once that
        # PostgreSQL is down.
        stored_id = on_direct_cursor(store, retry_s=0)
        if stored_id != run_id:  # an earlier submit with this idempotency key
            return Run(self, stored_id)
        try:
            publication.send()
        except Exception as exc:  # kombu/redis errors vary by transport
            # The run is committed with its first steps marked sent: recovery sends them.
            logger.warning(
                "run %s stored but not yet sent (%s); recovery will send it", run_id, exc
            )
        return Run(self, run_id)

    def get(self, run_id: uuid.UUID | str) -> RunView:
        """A snapshot of the run and its steps.

        Raises:
            RunNotFound: no run with that id.
        """
        rid = _parse_id(run_id)
        try:
            with get_engine().connect() as conn:
                run = run_store.get_run(conn, rid)
                if run is None:
                    raise RunNotFound(str(run_id))
                steps = run_store.get_steps(conn, rid)
        except OperationalError as exc:
            raise unavailable(exc) from None
        return _view(run, steps)

    def run_row(self, run_id: uuid.UUID | str) -> Any:
        """The run's own row, without its steps.

        Raises:
            RunNotFound: no run with that id.
        """
        try:
            with get_engine().connect() as conn:
                run = run_store.get_run(conn, _parse_id(run_id))
        except OperationalError as exc:
            raise unavailable(exc) from None
        if run is None:
            raise RunNotFound(str(run_id))
        return run

    def cancel(self, run_id: uuid.UUID | str) -> bool:
        """Cancel a run: no new step starts, running steps are revoked, unfinished steps and
        the run end ``cancelled``. False if the run had already ended.

        Raises:
            RunNotFound: no run with that id.
        """
        self.run_row(run_id)
        return stop_run(_parse_id(run_id), status="cancelled", reason="cancelled by request")

    def run(self, run_id: uuid.UUID | str) -> Run:
        return Run(self, _parse_id(run_id))

    def list(
        self, *, status: str | None = None, pipeline: str | None = None, limit: int = 20
    ) -> list[RunView]:
        try:
            with get_engine().connect() as conn:
                rows = run_store.list_runs(conn, status=status, pipeline=pipeline, limit=limit)
        except OperationalError as exc:
            raise unavailable(exc) from None
        return [_view(r, []) for r in rows]


def _parse_id(run_id: uuid.UUID | str) -> uuid.UUID:
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise RunNotFound(run_id) from None


def _view(run: Any, steps: list[Any]) -> RunView:
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
