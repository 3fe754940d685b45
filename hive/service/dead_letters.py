"""Dead letters: the steps that failed for good, scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from hive.db import dead_letters as letters
from hive.db.retrying import in_transaction
from hive.service.caller import Caller, Right
from hive.service.runs import get_run, parse_run_id
from hive.service.views import DeadLetterView, dead_letter_view
from hive.settings import Settings


def list_dead_letters(
    settings: Settings,
    caller: Caller,
    *,
    pipeline: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[DeadLetterView]:
    """Dead letters not yet replayed, newest first."""
    caller.require(Right.READ)
    rows = in_transaction(
        lambda conn: letters.list_open(
            conn, tenant=caller.tenant, pipeline=pipeline, since=since, limit=limit
        ),
        retry_s=0,
    )
    return [dead_letter_view(row) for row in rows]


def dead_letter_report(
    settings: Settings, caller: Caller, run_id: uuid.UUID | str
) -> dict[str, Any]:
    """A run's dead letters with error, traceback, attempts and pipeline context, as JSON.

    Raises:
        RunNotFound: no run with that id that the caller may see.
    """
    rid = parse_run_id(run_id)
    view = get_run(settings, caller, rid)
    rows = in_transaction(lambda conn: letters.for_run(conn, rid), retry_s=0)
    return {
        "run": {
            "id": view.id,
            "pipeline": view.pipeline,
            "version": view.pipeline_version,
            "status": view.status,
            "tenant": view.tenant,
            "input": view.input,
        },
        "steps": {s.step_id: s.status for s in view.steps},
        "dead_letters": [
            {
                key: value
                for key, value in dead_letter_view(row).to_json().items()
                if key not in ("run_id", "pipeline")
            }
            for row in rows
        ],
    }
