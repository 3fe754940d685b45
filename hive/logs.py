"""Logging set-up, in one place: text or JSON lines, each record with the ids it belongs to.

The ids live in a context variable (:func:`log_context`), set by whoever handles a run or a
step: the step task for the duration of a step, submit for a run it stores, a maintenance
task for its sweep. :class:`ContextFilter`, on the handler :func:`configure_logging`
installs, copies them into every record that passes through it, whichever logger wrote it:
an agent's own, a library's inside the agent, Celery's. A context variable follows the
thread (or task) that set it, so steps running side by side in a thread pool keep theirs
apart. A run's trace id (:func:`new_trace_id`) is one of those ids: the one that outlives
the farm, passed on to the services agents call.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from hive.settings import get_settings

__all__ = [
    "CONTEXT_FIELDS",
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "bind_log_context",
    "configure_logging",
    "current_log_context",
    "is_trace_id",
    "log_context",
    "new_trace_id",
    "reset_log_context",
]

# What a record may carry, in the order the text format shows it.
CONTEXT_FIELDS = (
    "run_id",
    "step_id",
    "attempt",
    "agent",
    "pipeline",
    "tenant",
    "task_id",
    "task",
    "trace_id",
)

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_INVALID_TRACE_ID = "0" * 32


def new_trace_id() -> str:
    """A random W3C trace-context trace id: 32 lowercase hex digits, never all zeros (the
    one value the specification reserves as invalid)."""
    while True:
        trace_id = secrets.token_hex(16)
        if trace_id != _INVALID_TRACE_ID:
            return trace_id


def is_trace_id(value: str) -> bool:
    """Whether ``value`` is a valid W3C trace id."""
    return bool(_TRACE_ID.match(value)) and value != _INVALID_TRACE_ID


# Never mutated: each binding sets a new mapping, so a reset restores the old one intact.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "hive_log_context", default=MappingProxyType({})
)


def current_log_context() -> Mapping[str, Any]:
    """The ids records written here carry now."""
    return _context.get()


def bind_log_context(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add ``fields`` (None values are left out) to the context until
    :func:`reset_log_context` is given the token returned."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def reset_log_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records written inside the block carry ``fields`` (None values are left out)."""
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current context into each record; what a record already carries (its own
    ``extra``) wins. Add it to a handler of your own to get the ids there too."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, process, message and the ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            # A prefork worker's pool processes are ForkPoolWorker-<n>, its own MainProcess.
            "process": record.processName,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [run=… step=<id>#<attempt> agent=… …]``: the ids an
    operator greps for in full; Celery's own lines already name the task id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = _compact_ids(record)
        return f"{line} [{ids}]" if ids else line


_SHORT = {"run_id": "run", "trace_id": "trace"}


def _compact_ids(record: logging.LogRecord) -> str:
    parts = []
    for field in CONTEXT_FIELDS:
        value = getattr(record, field, None)
        if value is None or field in ("attempt", "task_id"):
            continue
        attempt = getattr(record, "attempt", None)
        if field == "step_id" and attempt is not None:
            value = f"{value}#{attempt}"
        parts.append(f"{_SHORT.get(field, field.removesuffix('_id'))}={value}")
    return " ".join(parts)


def stderr_handler(filters: Sequence[logging.Filter] = ()) -> logging.Handler:
    """The handler :func:`configure_logging` installs: stderr, in ``HIVE_LOG_FORMAT``, each
    record with its context's ids. Also named by ``hive api``'s logging configuration
    (``"()": "hive.logs.stderr_handler"``), which each of its worker processes applies."""
    handler = logging.StreamHandler(sys.stderr)
    format_ = get_settings().logs.format
    handler.setFormatter(JsonFormatter() if format_ == "json" else TextFormatter())
    for extra in filters:
        handler.addFilter(extra)
    handler.addFilter(ContextFilter())
    return handler


_URL_LOGGERS = ("httpx", "httpcore")


def configure_logging(
    level: int | str | None = None,
    *,
    at_least: int | None = None,
    filters: Sequence[logging.Filter] = (),
) -> None:
    """Send records to stderr in the format ``HIVE_LOG_FORMAT`` names, at ``level`` (a name
    or a number; default ``HIVE_LOG_LEVEL``), or ``at_least`` if that is higher, each with
    the ids of the context it was written in. ``filters`` run first: ids a filter finds
    for a record win over the context's."""
    settings = get_settings()
    handler = stderr_handler(filters)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if level is None or level == "":
        level = settings.logs.level
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    root.setLevel(max(number, at_least or logging.NOTSET))
    # httpx writes every request's URL, query included, at INFO: a health URL's token (beat's
    # probes), a run's data in an http step's query. Payloads and secrets stay below DEBUG.
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if number <= logging.DEBUG else logging.WARNING
        )
