"""Read what PostgreSQL recorded about runs, for assertions on the system of record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from hive.db.engine import get_engine


def attempt_rows(run_id: str, step_id: str) -> list[Any]:
    """The step's failed attempts (``step_attempts``), oldest first."""
    with get_engine().connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT attempt, outcome, error, worker, started_at, finished_at"
                    "  FROM step_attempts WHERE run_id = :run_id AND step_id = :step_id"
                    " ORDER BY attempt"
                ),
                {"run_id": run_id, "step_id": step_id},
            )
        )


def count_rows(table: str) -> int:
    """Rows in one of Hive's tables (the name is ours, never user input)."""
    assert table in {"runs", "step_runs", "step_attempts", "events"}, table
    with get_engine().connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
