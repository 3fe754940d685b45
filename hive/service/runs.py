"""Reading runs, waiting for them, cancelling them: each scoped to the caller's tenant.

A run of another tenant is :class:`~hive.errors.RunNotFound`, exactly like a run that
does not exist, so a tenant-bound caller cannot learn that it does.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from hive.db import runs as run_store
from hive.db import usage as usage_store
from hive.db.retrying import Connection, in_autocommit, in_transaction
from hive.errors import InvalidArgument, RunNotFound
from hive.logs import log_context
from hive.service.arguments import as_utc, check_listing, parse_run_id
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.views import (
    RunPage,
    RunState,
    RunView,
    final_output,
    run_view,
    wait_timed_out,
)
from hive.settings import Settings
from hive.statuses import FINAL_RUN_STATUSES, RunStatus


@operation
def get_run(settings: Settings, caller: Caller, run_id: uuid.UUID | str) -> RunView:
    """The run and its steps.

    Raises:
        RunNotFound: no run with that id that the caller may see.
    """
    caller.require(Right.READ)
    rid = parse_run_id(run_id)

    def read(conn: Connection) -> RunView | None:
        run = run_store.get_run(conn, rid, tenant=caller.tenant)
        if run is None:
            return None
        return run_view(run, run_store.get_steps(conn, rid), usage_store.run_usage(conn, rid))

    # Not retried: the caller hears at once that PostgreSQL is down. Three reads outside a
    # transaction: under READ COMMITTED each would take its own snapshot within one anyway.
    view = in_autocommit(read, retry_s=0)
    if view is None:
        raise RunNotFound(str(run_id))
    return view


@operation
def get_run_state(settings: Settings, caller: Caller, run_id: uuid.UUID | str) -> RunState:
    """The run's status, output and error, without its steps.

    Raises:
        RunNotFound: no run with that id that the caller may see.
    """
    caller.require(Right.READ)
    return visible_state(caller, parse_run_id(run_id))


def visible_state(caller: Caller, run_id: uuid.UUID) -> RunState:
    """The run's state if the caller's tenant may see it; RunNotFound otherwise. No right
    is checked here: the operation calling it has checked its own."""
    row = in_transaction(
        lambda conn: run_store.get_run_state(conn, run_id, tenant=caller.tenant), retry_s=0
    )
    if row is None:
        raise RunNotFound(str(run_id))
    return RunState(
        id=row.id, status=row.status, output=row.output, error=row.error, tenant=row.tenant
    )


@operation
def list_runs(
    settings: Settings,
    caller: Caller,
    *,
    status: str | None = None,
    pipeline: str | None = None,
    limit: int = 20,
) -> list[RunView]:
    """The caller's runs, newest first, without their steps (``steps`` is None).

    Raises:
        InvalidArgument: ``limit`` is not from 1 to 10,000, ``status`` is not a run status,
            or ``pipeline`` is not a name.
    """
    caller.require(Right.READ)
    check_listing(limit=limit, pipeline=pipeline, status=status)

    def read(conn: Connection) -> tuple[list[Any], dict[uuid.UUID, dict[str, float | int]]]:
        rows = run_store.list_runs(
            conn, tenant=caller.tenant, status=status, pipeline=pipeline, limit=limit
        )
        return rows, usage_store.runs_usage(conn, [row.id for row in rows])

    rows, usage = in_transaction(read, retry_s=0)
    return [run_view(row, None, total=usage.get(row.id, {})) for row in rows]


@operation
def list_runs_page(
    settings: Settings,
    caller: Caller,
    *,
    status: str | None = None,
    pipeline: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> RunPage:
    """The caller's runs like :func:`list_runs`, a page at a time. The cursor marks where
    the page ended (the last run's creation time and id): runs submitted meanwhile go
    before the first page, so no run is shown twice or skipped.

    ``created_after`` (inclusive) and ``created_before`` bound the runs' creation times.

    Raises:
        InvalidArgument: as :func:`list_runs`, a cursor this function did not make, or
            creation bounds that are not datetimes with a time zone (or are out of range).
    """
    caller.require(Right.READ)
    check_listing(limit=limit, pipeline=pipeline, status=status)
    bounds = {"created_after": created_after, "created_before": created_before}
    naive = [
        f"{name} must be a datetime with a time zone"
        for name, value in bounds.items()
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None)
    ]
    if naive:
        raise InvalidArgument(naive)
    created_after, created_before = (
        None if value is None else as_utc(name, value) for name, value in bounds.items()
    )
    before = None if cursor is None else _decode_cursor(cursor)

    def read(conn: Connection) -> tuple[list[Any], dict[uuid.UUID, dict[str, float | int]]]:
        rows = run_store.list_runs(
            conn, tenant=caller.tenant, status=status, pipeline=pipeline, limit=limit + 1,
            before=before, created_after=created_after, created_before=created_before,
        )  # fmt: skip
        return rows, usage_store.runs_usage(conn, [row.id for row in rows[:limit]])

    rows, usage = in_transaction(read, retry_s=0)
    page = rows[:limit]
    following = _encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return RunPage([run_view(row, None, total=usage.get(row.id, {})) for row in page], following)


def _encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    text = f"{created_at.isoformat()}|{run_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, run_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("no time zone")
        # In UTC, as the cursors made here are: PostgreSQL refuses an offset past 15:59,
        # which a forged one may carry.
        return at.astimezone(UTC), uuid.UUID(run_id)
    except (ValueError, OverflowError):  # binascii.Error and UnicodeDecodeError among them
        raise InvalidArgument(["cursor is not one a listing of runs returned"]) from None


@operation
def wait_for_run(
    settings: Settings,
    caller: Caller,
    run_id: uuid.UUID | str,
    *,
    timeout: float | None = None,
    poll_s: float = 0.02,
) -> Any:
    """Block until the run ends; its output.

    Raises:
        RunNotFound: no run with that id that the caller may see.
        RunFailed: the run ended failed, cancelled, expired or budget_exceeded; names the
                failed step.
        TimeoutError: ``timeout`` seconds passed first.
    """
    caller.require(Right.READ)
    rid = parse_run_id(run_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = poll_s
    while True:
        # The run's row alone: a run of a thousand steps is polled as cheaply as one.
        state = visible_state(caller, rid)
        if state.status in FINAL_RUN_STATUSES:
            return final_output(state)
        if deadline is not None and time.monotonic() >= deadline:
            raise wait_timed_out(rid, state.status, timeout)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


@operation
def cancel_run(settings: Settings, caller: Caller, run_id: uuid.UUID | str) -> bool:
    """Cancel a run: no new step starts, running steps are revoked, unfinished steps and
    the run end ``cancelled``. False if the run had already ended, or had no step
    left to stop (it is closing with its steps' outcome).

    Raises:
        RunNotFound: no run with that id that the caller may see.
    """
    caller.require(Right.CANCEL)
    rid = parse_run_id(run_id)
    visible_state(caller, rid)
    with log_context(run_id=str(rid)):
        from hive.tasks.cancel import stop_run  # Celery: for the commands that send

        return stop_run(rid, status=RunStatus.CANCELLED, reason="cancelled by request")
