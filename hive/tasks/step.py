"""The step task: claim, resolve inputs, run the agent, record the outcome."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Task

from hive import keys
from hive.agents.base import AgentContext
from hive.agents.registry import default_registry
from hive.db import steps as step_store
from hive.db.engine import get_engine
from hive.pipelines.refs import resolve
from hive.settings import get_settings
from hive.tasks import outcomes
from hive.tasks.app import app
from hive.tasks.retry import backoff_s, error_info, is_retryable

logger = logging.getLogger(__name__)


@app.task(name=keys.RUN_STEP_TASK, bind=True, max_retries=None)
def run_step(self: Task, run_id: str, step_id: str, attempt: int) -> None:
    """Run one attempt of one step. The message carries ids only.

    Args:
        run_id: the run's UUID.
        step_id: the step's id within the run.
        attempt: the attempt this message is for (1 for the first).
    """
    rid = uuid.UUID(run_id)
    log = logging.LoggerAdapter(
        logger,
        {"run_id": run_id, "step_id": step_id, "task_id": self.request.id, "attempt": attempt},
    )
    with get_engine().begin() as conn:
        claimed = step_store.claim(
            conn, rid, step_id, attempt, self.request.hostname or "?", get_settings().lease_grace_s
        )
    if claimed is None:
        # A duplicate, a late message, or a cancelled run: whoever owns the step goes on.
        log.debug("step not claimable; message dropped")
        self.request.chain = None
        return

    agent_cls = default_registry().get(claimed.agent)
    step_input: Any = None
    try:
        if agent_cls is None:
            raise LookupError(f"agent {claimed.agent!r} is not installed on this worker")
        step_input = resolve(claimed.input_template, claimed.run_input, claimed.upstream)
        ctx = AgentContext(
            run_id=run_id,
            step_id=step_id,
            attempt=attempt,
            tenant=claimed.tenant,
            logger=log.logger,
            upstream={k: claimed.upstream.get(k) for k in claimed.needs},
        )
        output = agent_cls().execute(step_input, ctx)
    except Exception as exc:
        _handle_failure(self, log, rid, step_id, attempt, claimed.options, step_input, exc)
        return
    if not outcomes.record_success(rid, step_id, attempt, step_input, output):
        self.request.chain = None


def _handle_failure(
    task: Task,
    log: logging.LoggerAdapter[logging.Logger],
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    options: dict[str, Any],
    step_input: Any,
    exc: Exception,
) -> None:
    error = error_info(exc)
    retries_left = attempt <= int(options.get("max_retries", 0))
    if is_retryable(exc) and retries_left:
        delay = backoff_s(attempt, options)
        log.info("attempt failed (%s); retrying in %.2fs", error["type"], delay)
        if outcomes.record_retry(run_id, step_id, attempt, step_input, error):
            # retry() keeps the rest of the chain this message carries.
            raise task.retry(
                args=(str(run_id), step_id, attempt + 1), countdown=delay, max_retries=None
            )
        task.request.chain = None
        return
    log.warning("attempt failed for good: %s: %s", error["type"], error["message"])
    outcomes.record_failure(run_id, step_id, attempt, step_input, error)
    task.request.chain = None
