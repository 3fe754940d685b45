"""Hive: a worker farm for AI-agent pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hive.errors import (
    HiveError,
    InputError,
    PermanentError,
    RetryableError,
    RunFailed,
    RunNotFound,
    ServiceUnavailable,
    TransientError,
    UnknownPipeline,
)

if TYPE_CHECKING:
    from hive.client import Client, Run

__all__ = [
    "Client",
    "HiveError",
    "InputError",
    "PermanentError",
    "RetryableError",
    "Run",
    "RunFailed",
    "RunNotFound",
    "ServiceUnavailable",
    "TransientError",
    "UnknownPipeline",
]


def __getattr__(name: str) -> Any:
    # The client pulls in Celery and SQLAlchemy; agents importing `hive.errors` should not.
    if name in ("Client", "Run"):
        from hive import client

        return getattr(client, name)
    raise AttributeError(f"module 'hive' has no attribute {name!r}")
