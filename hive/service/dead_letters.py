"""Dead letters: the steps that failed for good, scoped to the caller's tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

from hive.db import dead_letters as letters
from hive.db.retrying import in_transaction
from hive.service.arguments import as_utc, check_listing, parse_run_id
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.runs import get_run
from hive.service.views import DeadLetterReport, DeadLetterView, dead_letter_view
from hive.settings import Settings


@operation
def list_dead_letters(
    settings: Settings,
    caller: Caller,
    *,
    pipeline: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[DeadLetterView]:
    """Dead letters not yet replayed, newest first.

    Raises:
        InvalidArgument: ``limit`` is not from 1 to 10,000, ``pipeline`` is not a name or
            ``since`` is not a datetime (or is out of range).
    """
    caller.require(Right.READ)
    check_listing(limit=limit, pipeline=pipeline, since=since)
    since = None if since is None else as_utc("since", since)
    rows = in_transaction(
        lambda conn: letters.list_open(
            conn, tenant=caller.tenant, pipeline=pipeline, since=since, limit=limit
        ),
        retry_s=0,
    )
    return [dead_letter_view(row) for row in rows]


@operation
def dead_letter_report(
    settings: Settings, caller: Caller, run_id: uuid.UUID | str
) -> DeadLetterReport:
    """A run with its steps, and its dead letters (replayed ones too) with error,
    traceback, attempts and input.

    Raises:
        RunNotFound: no run with that id that the caller may see.
    """
    rid = parse_run_id(run_id)
    view = get_run(settings, caller, rid)
    rows = in_transaction(lambda conn: letters.for_run(conn, rid), retry_s=0)
    return DeadLetterReport(run=view, dead_letters=[dead_letter_view(row) for row in rows])
