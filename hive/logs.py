"""Logging set-up, in one place: text or JSON lines, with run/step/task ids when present."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from hive.settings import get_settings

_CONTEXT_FIELDS = ("run_id", "step_id", "task_id", "attempt")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(
            f"{f}={getattr(record, f)}" for f in _CONTEXT_FIELDS if getattr(record, f, None)
        )
        return f"{line} [{ctx}]" if ctx else line


def configure_logging(level: int | str | None = None) -> None:
    """Send records to stderr in the format ``HIVE_LOG_FORMAT`` names, at ``level`` (a name
    or a number; default ``HIVE_LOG_LEVEL``)."""
    settings = get_settings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.logs.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if level is None or level == "":
        level = settings.logs.level
    root.setLevel(level.upper() if isinstance(level, str) else level)
