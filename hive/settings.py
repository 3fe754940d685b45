"""Hive's settings: the only module that reads the environment.

Every setting is an environment variable with the prefix ``HIVE_``. Nothing is
read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hive.errors import SettingsError

_PREFIX = "HIVE_"


class Settings(BaseSettings):
    """All of Hive's configuration, from ``HIVE_*`` variables."""

    # No inf/nan: an infinite interval or timeout would stall beat or a lease forever.
    model_config = SettingsConfigDict(
        env_prefix=_PREFIX, extra="ignore", frozen=True, allow_inf_nan=False
    )

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
    key_prefix: str = Field(default="hive", min_length=1)

    # Bounds on run input (at submit and replay) and on agent output (before it is stored).
    # Past about 200 levels, pydantic and Python's recursion limit fail before the check.
    max_input_bytes: int = Field(default=1_000_000, gt=0)
    max_input_depth: int = Field(default=64, ge=1, le=200)

    # Operations
    flower_basic_auth: str | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Messages below never repeat the value: URLs and the Flower setting carry passwords.

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if value.startswith("postgresql://"):
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; Hive ships psycopg2.
            value = "postgresql+psycopg2://" + value.removeprefix("postgresql://")
        if not value.startswith("postgresql+psycopg2://"):
            raise ValueError("must be a postgresql:// or postgresql+psycopg2:// URL")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            database = make_url(value).database
        except (ArgumentError, ValueError):
            raise ValueError("is not a valid URL (check the port and the brackets)") from None
        if not database:
            # libpq would pick a database named after the OS user: not what anyone meant.
            raise ValueError("names no database (postgresql://user@host:5432/DATABASE)")
        return value

    @field_validator("broker_url")
    @classmethod
    def _redis_broker(cls, value: str) -> str:
        return _redis_url(value)

    @field_validator("result_backend")
    @classmethod
    def _redis_backend(cls, value: str) -> str:
        return _redis_url(value) if value else value

    @field_validator("pipelines_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        # Path("") is the working directory: every YAML file there would be read as a pipeline.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_password(cls, value: str | None) -> str | None:
        # Flower takes a comma-separated list of user:password pairs.
        if value and any(
            not user or not password
            for user, _, password in (pair.partition(":") for pair in value.split(","))
        ):
            raise ValueError("must be user:password (both non-empty; several joined by commas)")
        return value or None


def _redis_url(value: str) -> str:
    """Check a redis:// or rediss:// URL's shape; Hive's own clients (redis-py) read it too."""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("must be a redis:// or rediss:// URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has a port that is not a number from 1 to 65535")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("must end in a database number, like redis://localhost:6379/0")
    return value


def load_settings() -> Settings:
    """Read the settings from the environment, translating errors to :class:`SettingsError`."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        problem = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{_PREFIX}{field.upper()}", problem) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
