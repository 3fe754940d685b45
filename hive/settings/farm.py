"""The farm's own sections: its broker, its database, recovery, workers, retention, and
where pipelines and local files are.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, ValidationInfo, field_validator

from hive.settings.fields import Section, check_redis_url, not_blank, var


class BrokerSettings(Section):
    """Redis: Celery's broker and Hive's own short-lived keys."""

    url: SecretStr = var(
        "BROKER_URL",
        "Redis for Celery's queues and Hive's own keys; `redis://:PASSWORD@host:6379/0` or "
        "`rediss://` for TLS",
        default=SecretStr("redis://localhost:6379/0"),
    )
    # Empty by default: outputs live in PostgreSQL and task results are ignored, so a backend
    # would only be one more server whose outage stalls publishing.
    result_backend: SecretStr = var(
        "RESULT_BACKEND",
        "none: outputs live in PostgreSQL and task results are ignored; a Celery backend "
        "URL such as `redis://localhost:6379/1` turns one on",
        default=SecretStr(""),
    )
    # Must exceed the longest step timeout plus the time a message can wait in a worker buffer.
    visibility_timeout_s: int = var(
        "VISIBILITY_TIMEOUT_S", "must exceed the longest step timeout", default=4 * 3600, gt=0
    )
    # Namespaced so several farms (or test runs) can share one Redis.
    key_prefix: str = var(
        "KEY_PREFIX",
        "prefix of Hive's own Redis keys (recovery markers, maintenance locks)",
        default="hive",
        min_length=1,
    )

    @field_validator("url")
    @classmethod
    def _redis_broker(cls, value: SecretStr) -> SecretStr:
        check_redis_url(value.get_secret_value())
        return value

    @field_validator("result_backend")
    @classmethod
    def _redis_backend(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            check_redis_url(value.get_secret_value())
        return value


class DatabaseSettings(Section):
    """PostgreSQL, the system of record."""

    url: SecretStr = var(
        "DATABASE_URL",
        "PostgreSQL, the system of record",
        default=SecretStr("postgresql+psycopg2://postgres@localhost:5432/hive"),
    )
    # Server-side prepared statements on the step path; off behind PgBouncer in transaction
    # mode.
    prepared: bool = var(
        "DB_PREPARED",
        "server-side prepared statements on the step path; `false` behind PgBouncer in "
        "transaction mode",
        default=True,
    )
    # A claim holds no data, so by default it does not wait for its WAL flush (the step's
    # success, which does, flushes it).
    claim_sync_commit: bool = var(
        "CLAIM_SYNC_COMMIT",
        "`false`: a step's claim does not wait for its WAL flush (a PostgreSQL crash can undo "
        "it; recovery sends the step again); `true` to wait",
        default=False,
    )
    retry_s: float = var(
        "DB_RETRY_S",
        "how long a step retries its writes while PostgreSQL is down",
        default=120.0,
        ge=0,
    )
    # A step holds a connection only for its claim and its finish, so a few dozen serve
    # hundreds of threads waiting on outside calls; one per thread would exhaust
    # PostgreSQL's max_connections (100 by default) for every other client.
    pool_max: int = var(
        "DB_POOL_MAX",
        "the most connections each of a worker process's two pools keeps open: a thread "
        "pool's `--concurrency`, capped at this; a step waiting longer than 30 s for one "
        "retries as if PostgreSQL were down",
        default=20,
        ge=1,
    )

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
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
        return SecretStr(value)

    @property
    def name(self) -> str:
        """The database's name, which is no secret (errors may show it)."""
        from sqlalchemy.engine import make_url

        return make_url(self.url.get_secret_value()).database or ""


class RecoverySettings(Section):
    """Leases, the recovery sweep and re-sends."""

    lease_grace_s: float = var(
        "LEASE_GRACE_S",
        "a running step's lease is its timeout plus this",
        default=30.0,
        gt=0,
    )
    interval_s: float = var(
        "RECOVERY_INTERVAL_S",
        "how often beat runs `recover_stalled_runs`",
        default=30.0,
        gt=0,
    )
    # Covers a crash between commit and publish, and a message lost with Redis; duplicates
    # are dropped by the claim. Bounded by the queue's length (hive/beat/recovery.py).
    redispatch_after_s: float = var(
        "REDISPATCH_AFTER_S",
        "a step marked sent but never started is sent again after this, if its queue holds "
        "fewer messages than it has steps waiting (else its message may still be there); the "
        "n-th re-send of a step waits this times 2^n, at most 16 times this",
        default=600.0,
        gt=0,
    )
    publish_grace_s: float = var(
        "PUBLISH_GRACE_S",
        "a step marked sent whose publish was never confirmed (its dispatcher died between "
        "commit and publish) is sent again after this",
        default=30.0,
        gt=0,
    )


class WorkerSettings(Section):
    """Workers in the registry: how often each heartbeats, and when one is presumed lost."""

    heartbeat_s: float = var(
        "WORKER_HEARTBEAT_S",
        "how often each `hive worker` records its heartbeat in PostgreSQL (from a thread of "
        "its main process); must be shorter than `HIVE_WORKER_LOST_AFTER_S`",
        default=5.0,
        gt=0,
    )
    lost_after_s: float = var(
        "WORKER_LOST_AFTER_S",
        "a worker silent for longer than this is marked lost by the sweep, and the steps it "
        "was running are taken back at once instead of when their lease runs out",
        default=30.0,
        gt=0,
    )

    @field_validator("lost_after_s")
    @classmethod
    def _longer_than_heartbeat(cls, value: float, info: ValidationInfo) -> float:
        # Otherwise every worker would be marked lost between two of its own heartbeats.
        heartbeat = info.data.get("heartbeat_s")
        if heartbeat is not None and value <= heartbeat:
            raise ValueError("must be longer than HIVE_WORKER_HEARTBEAT_S")
        return value


class RetentionSettings(Section):
    """How long finished runs, events and audit records are kept."""

    days: int = var(
        "RETENTION_DAYS",
        "`purge_retention` deletes finished runs and events older than this",
        default=30,
        ge=1,
    )
    audit_days: int = var(
        "AUDIT_RETENTION_DAYS",
        "`purge_retention` deletes audit records (`hive audit list`) older than this",
        default=90,
        ge=1,
    )
    purge_interval_s: float = var(
        "PURGE_INTERVAL_S", "how often beat runs `purge_retention`", default=86400.0, gt=0
    )


class PipelineSettings(Section):
    """Where pipelines are read from, and the bounds on what enters and leaves their steps."""

    dir: Path = var(
        "PIPELINES_DIR", "the folder of pipeline YAML files", default=Path("config/pipelines")
    )
    max_input_bytes: int = var(
        "MAX_INPUT_BYTES",
        "the largest run input (at submit and `dlq replay --input`) and agent output, as "
        "compact UTF-8 JSON; larger input is refused naming its largest field, larger output "
        "fails the step for good",
        default=1_000_000,
        gt=0,
    )
    # Past about 200 levels, pydantic and Python's recursion limit fail before the check.
    max_input_depth: int = var(
        "MAX_INPUT_DEPTH",
        "the deepest nesting of objects and arrays in run input and agent output (at most "
        "200); refused the same way, naming the field",
        default=64,
        ge=1,
        le=200,
    )

    @field_validator("dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        # Path("") is the working directory: every YAML file there would be read as a pipeline.
        return not_blank(value)


class StorageSettings(Section):
    """Files a process keeps on its own disk."""

    data_dir: Path = var(
        "DATA_DIR",
        "where `hive beat` keeps its schedule file and `hive flower --persistent` its state "
        "(`flower/`)",
        default=Path(".hive"),
    )

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        return not_blank(value)
