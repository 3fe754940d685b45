"""The event log: things worth knowing that are not a status."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, insert, text

from hive.db.models import Json, events


def record(
    conn: Connection,
    kind: str,
    detail: dict[str, Any] | None = None,
    *,
    run_id: uuid.UUID | None = None,
    step_id: str | None = None,
) -> None:
    conn.execute(insert(events).values(run_id=run_id, step_id=step_id, kind=kind, detail=detail))


# An attempt's outcome may be recorded twice: the soft time limit can strike after the
# first recording committed, and the step task then records again (hive/tasks/step.py,
# `_settle`). The event says one thing happened, so the second write adds nothing.
_LATE_FINISH = text(
    """
    INSERT INTO events (run_id, step_id, kind, detail)
    SELECT :run_id, :step_id, 'late_finish', :detail
    WHERE NOT EXISTS (
        SELECT 1 FROM events
        WHERE run_id = :run_id AND step_id = :step_id AND kind = 'late_finish'
          AND detail->>'attempt' = :attempt_text
    )
    """
).bindparams(bindparam("detail", type_=Json))


def record_late_finish(conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int) -> bool:
    """Record that ``attempt`` finished after losing the step, once per attempt. False when
    it was recorded already."""
    params = {
        "run_id": run_id,
        "step_id": step_id,
        "detail": {"attempt": attempt},
        "attempt_text": str(attempt),
    }
    return conn.execute(_LATE_FINISH, params).rowcount == 1
