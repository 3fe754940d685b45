"""Steps whose message cannot be published: failed for good, as a dead letter to replay."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.db.models import Json
from hive.statuses import StepStatus

_FAIL_UNDELIVERABLE = text(
    """
    WITH failed AS (
        UPDATE step_runs
           SET status = :failed, error = :error, enqueued_at = NULL, publish_by = NULL,
               finished_at = now()
         WHERE run_id = :run_id AND step_id = ANY(:ids) AND status = :pending
        RETURNING step_id, agent, attempt, input
    )
    INSERT INTO dead_letters (run_id, step_id, pipeline, agent, attempts, error, input)
    SELECT :run_id, f.step_id, r.pipeline, f.agent, f.attempt, :error, f.input
      FROM failed f JOIN runs r ON r.id = :run_id
    RETURNING step_id
    """
).bindparams(bindparam("ids", type_=ARRAY(Text)), bindparam("error", type_=Json))


def fail_undeliverable(
    conn: Connection, run_id: uuid.UUID, step_ids: list[str], error: dict[str, Any]
) -> list[str]:
    """Fail the still-pending ``step_ids`` with ``error``, each with a dead letter (a replay
    sends it again once the cause is fixed). Returns the steps failed."""
    params = {"run_id": run_id, "ids": step_ids, "error": error,
              "failed": StepStatus.FAILED, "pending": StepStatus.PENDING}  # fmt: skip
    rows = conn.execute(_FAIL_UNDELIVERABLE, params)
    return [r.step_id for r in rows]
