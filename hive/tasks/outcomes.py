"""What happens after an attempt ends: record it, release or skip what depends on it,
dispatch what became ready, and finish the run when nothing is left.

Each function runs one transaction and publishes after it commits.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import Connection, insert

from hive.db import runs as run_store
from hive.db import steps as step_store
from hive.db.engine import get_engine
from hive.db.models import events
from hive.pipelines.refs import resolve
from hive.tasks.dispatch import Publication, dispatch

logger = logging.getLogger(__name__)


def record_success(
    run_id: uuid.UUID, step_id: str, attempt: int, step_input: Any, output: Any
) -> bool:
    """Record the attempt's success once; False for a late finish (the step was taken back)."""
    with get_engine().begin() as conn:
        ready = step_store.succeed(conn, run_id, step_id, attempt, step_input, output)
        if ready is None:
            _late_finish(conn, run_id, step_id, attempt)
            return False
        count = run_store.count_down(conn, run_id, 1)
        publication = dispatch(conn, run_id, ready, count.priority)
        if count.remaining == 0:
            finish(conn, run_id, count.failed_step)
    publication.send()
    return True


def record_retry(
    run_id: uuid.UUID, step_id: str, attempt: int, step_input: Any, error: dict[str, Any]
) -> bool:
    """Record a failed attempt that will be retried; False if the attempt lost the step."""
    with get_engine().begin() as conn:
        ok = step_store.end_attempt(
            conn, run_id, step_id, attempt, error=error, step_input=step_input, retry=True
        )
        if not ok:
            _late_finish(conn, run_id, step_id, attempt)
    return ok


def record_failure(
    run_id: uuid.UUID, step_id: str, attempt: int, step_input: Any, error: dict[str, Any]
) -> bool:
    """Fail the step for good: skip its descendants, and finish the run if nothing is left."""
    with get_engine().begin() as conn:
        ok = step_store.end_attempt(
            conn, run_id, step_id, attempt, error=error, step_input=step_input, retry=False
        )
        if not ok:
            _late_finish(conn, run_id, step_id, attempt)
            return False
        skipped = step_store.skip_descendants(conn, run_id, step_id)
        run_error = {"step_id": step_id, "type": error["type"], "message": error["message"]}
        count = run_store.count_down(
            conn, run_id, 1 + len(skipped), failed_step=step_id, error=run_error
        )
        if count.remaining == 0:
            finish(conn, run_id, count.failed_step)
    logger.warning(
        "step failed for good: %s; %d downstream steps skipped", error["type"], len(skipped)
    )
    return True


def finish(conn: Connection, run_id: uuid.UUID, failed_step: str | None) -> None:
    """Close the run: failed if a step failed, else succeeded with its output."""
    if failed_step is not None:
        run_store.finish_run(conn, run_id, "failed")
        return
    run_input, spec, outputs = run_store.load_output_inputs(conn, run_id)
    template = spec.get("template")
    output = outputs if template is None else resolve(template, run_input, outputs)
    run_store.finish_run(conn, run_id, "succeeded", output)


def _late_finish(conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int) -> None:
    conn.execute(
        insert(events).values(
            run_id=run_id, step_id=step_id, kind="late_finish", detail={"attempt": attempt}
        )
    )
    logger.info("attempt %d no longer owns the step; its result is not recorded", attempt)


def publish(publication: Publication) -> None:
    """Send what a committed transaction decided."""
    publication.send()
