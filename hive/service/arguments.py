"""The arguments of the service's reads, checked before they reach PostgreSQL.

A Python caller (and, later, an HTTP body) can hand any value: one that PostgreSQL would
refuse, or that would fail deep in a query, is refused here with one line naming it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hive.errors import InvalidArgument, RunNotFound
from hive.statuses import RunStatus

LIST_LIMIT_MAX = 10_000
"""The most rows one listing returns: a bigger page is a dump, not a listing."""


def parse_run_id(run_id: uuid.UUID | str) -> uuid.UUID:
    """A run id given as a UUID or its text.

    Raises:
        RunNotFound: text that is no UUID, which names no run.
        InvalidArgument: neither a UUID nor text (also a ValueError).
    """
    if isinstance(run_id, uuid.UUID):
        return run_id
    if not isinstance(run_id, str):
        raise InvalidArgument([f"a run id is a UUID or its text, not {type(run_id).__name__}"])
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise RunNotFound(run_id) from None


def check_listing(
    *,
    limit: Any,
    pipeline: Any = None,
    status: Any = None,
    since: Any = None,
) -> None:
    """Refuse listing arguments that are not what they say.

    Raises:
        InvalidArgument: ``limit`` is not a whole number from 1 to :data:`LIST_LIMIT_MAX`;
            ``pipeline`` is not a name (see :func:`check_pipeline_name`); ``status`` is not
            a run status; ``since`` is not a datetime. Names each one.
    """
    problems: list[str] = []
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
        problems.append(f"limit must be a whole number from 1 to {LIST_LIMIT_MAX}, not {limit!r}")
    if pipeline is not None:
        problems += _pipeline_problems(pipeline)
    statuses = [s.value for s in RunStatus]
    if status is not None and not (isinstance(status, str) and status in statuses):
        problems.append(f"status must be one of {', '.join(statuses)}, not {status!r}")
    if since is not None and not isinstance(since, datetime):
        problems.append(f"since must be a datetime, not {type(since).__name__}")
    if problems:
        raise InvalidArgument(problems)


def as_utc(name: str, value: datetime) -> datetime:
    """A time bound with a zone in UTC (a naive one as it is): PostgreSQL refuses a UTC
    offset past 15:59, which Python (and ISO 8601 text) allows.

    Raises:
        InvalidArgument: in UTC, the time falls outside the years 1 to 9999.
    """
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidArgument(
            [f"{name} is out of range (in UTC, before 0001 or after 9999)"]
        ) from None


def check_pipeline_name(pipeline: Any) -> None:
    """Raises InvalidArgument unless ``pipeline`` is a string a pipeline name could be."""
    problems = _pipeline_problems(pipeline)
    if problems:
        raise InvalidArgument(problems)


def _pipeline_problems(pipeline: Any) -> list[str]:
    if not isinstance(pipeline, str):
        return [f"pipeline must be a pipeline name, not {type(pipeline).__name__}"]
    if "\x00" in pipeline:
        return ["pipeline contains a NUL character (\\u0000), which no name has"]
    return []
