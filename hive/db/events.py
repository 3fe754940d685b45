"""The event log: things worth knowing that are not a status."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, insert

from hive.db.models import events


def record(
    conn: Connection,
    kind: str,
    detail: dict[str, Any] | None = None,
    *,
    run_id: uuid.UUID | None = None,
    step_id: str | None = None,
) -> None:
    conn.execute(insert(events).values(run_id=run_id, step_id=step_id, kind=kind, detail=detail))
