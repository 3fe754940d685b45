"""Hive's settings: the only module that reads the environment.

Every setting is an environment variable with the prefix ``HIVE_``. Nothing is
read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hive.errors import SettingsError

_PREFIX = "HIVE_"


class Settings(BaseSettings):
    """All of Hive's configuration, from ``HIVE_*`` variables."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)

    broker_url: str = "redis://localhost:6379/0"
    # None by default: outputs live in PostgreSQL and task results are ignored, so a backend
    # would only be one more server whose outage stalls publishing.
    result_backend: str = ""
    database_url: str = "postgresql+psycopg2://postgres@localhost:5432/hive"
    pipelines_dir: Path = Path("config/pipelines")

    # Durability
    lease_grace_s: float = Field(default=30.0, gt=0)
    recovery_interval_s: float = Field(default=30.0, gt=0)
    retention_days: int = Field(default=30, ge=1)
    purge_interval_s: float = Field(default=86400.0, gt=0)
    # Must exceed the longest step timeout plus the time a message can wait in a worker buffer.
    visibility_timeout_s: int = Field(default=4 * 3600, gt=0)
    # Server-side prepared statements on the step path; turn off behind PgBouncer
    # in transaction mode.
    db_prepared: bool = True
    # A claim holds no data, so by default it does not wait for its WAL flush (the step's
    # success, which does, flushes it). Should PostgreSQL crash within that fraction of a
    # second, the claim is lost and recovery sends the step again. true: claims wait too.
    claim_sync_commit: bool = False
    # How long a step keeps retrying its writes while PostgreSQL is unreachable.
    db_retry_s: float = Field(default=120.0, ge=0)
    # A step marked sent whose message has not started after this long is sent again
    # (covers a crash between commit and publish); duplicates are dropped by the claim.
    redispatch_after_s: float = Field(default=600.0, gt=0)
    # A step marked sent whose publish is not confirmed after this long (its dispatcher
    # died between commit and publish) is sent again.
    publish_grace_s: float = Field(default=30.0, gt=0)
    # Messages are namespaced so several farms (or test runs) can share one Redis.
    key_prefix: str = "hive"

    # Operations
    flower_basic_auth: str | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if value.startswith("postgresql://"):
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; Hive ships psycopg2.
            return "postgresql+psycopg2://" + value.removeprefix("postgresql://")
        if not value.startswith("postgresql+psycopg2://"):
            raise ValueError("must be a postgresql:// or postgresql+psycopg2:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _redis_broker(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "sentinel://")):
            raise ValueError("must be a redis://, rediss:// or sentinel:// URL")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_password(cls, value: str | None) -> str | None:
        if value is not None and value and ":" not in value:
            raise ValueError("must be user:password")
        return value or None


def load_settings() -> Settings:
    """Read the settings from the environment, translating errors to :class:`SettingsError`."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise SettingsError(f"{_PREFIX}{field.upper()}", first["msg"]) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
