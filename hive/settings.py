"""Hive's settings: the only module that reads the environment.

Every setting is an environment variable with the prefix ``HIVE_``; in code they are grouped
into sections (``settings.database.url``, ``settings.recovery.lease_grace_s``...), each a
``BaseSettings`` of its own that reads its variables by their full names, so the names stay
flat and stable while the code reads by area. Nothing is read at import time: call
:func:`get_settings`. Every malformed variable is reported at once, by name, and never with
its value (URLs and the Flower setting carry passwords, hence ``SecretStr``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeGuard
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from hive.errors import CredentialError, SettingsError

_PREFIX = "HIVE_"


def _var(name: str, description: str, **constraints: Any) -> Any:
    """A field read from the variable ``HIVE_<NAME>``, whatever the field is called in code."""
    return Field(
        validation_alias=AliasChoices(f"{_PREFIX}{name}"),
        description=description,
        **constraints,
    )


class _Section(BaseSettings):
    # No inf/nan: an infinite interval or timeout would stall beat or a lease forever.
    # populate_by_name: tests and embedders may build a section by field name.
    model_config = SettingsConfigDict(
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
        case_sensitive=False,
        populate_by_name=True,
    )


class BrokerSettings(_Section):
    """Redis: Celery's broker and Hive's own short-lived keys."""

    url: SecretStr = _var(
        "BROKER_URL",
        "Redis for Celery's queues and Hive's own keys; `redis://:PASSWORD@host:6379/0` or "
        "`rediss://` for TLS",
        default=SecretStr("redis://localhost:6379/0"),
    )
    # Empty by default: outputs live in PostgreSQL and task results are ignored, so a backend
    # would only be one more server whose outage stalls publishing.
    result_backend: SecretStr = _var(
        "RESULT_BACKEND",
        "none: outputs live in PostgreSQL and task results are ignored; a Celery backend "
        "URL such as `redis://localhost:6379/1` turns one on",
        default=SecretStr(""),
    )
    # Must exceed the longest step timeout plus the time a message can wait in a worker buffer.
    visibility_timeout_s: int = _var(
        "VISIBILITY_TIMEOUT_S", "must exceed the longest step timeout", default=4 * 3600, gt=0
    )
    # Namespaced so several farms (or test runs) can share one Redis.
    key_prefix: str = _var(
        "KEY_PREFIX",
        "prefix of Hive's own Redis keys (recovery markers, maintenance locks)",
        default="hive",
        min_length=1,
    )

    @field_validator("url")
    @classmethod
    def _redis_broker(cls, value: SecretStr) -> SecretStr:
        _check_redis_url(value.get_secret_value())
        return value

    @field_validator("result_backend")
    @classmethod
    def _redis_backend(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            _check_redis_url(value.get_secret_value())
        return value


class DatabaseSettings(_Section):
    """PostgreSQL, the system of record."""

    url: SecretStr = _var(
        "DATABASE_URL",
        "PostgreSQL, the system of record",
        default=SecretStr("postgresql+psycopg2://postgres@localhost:5432/hive"),
    )
    # Server-side prepared statements on the step path; off behind PgBouncer in transaction
    # mode.
    prepared: bool = _var(
        "DB_PREPARED",
        "server-side prepared statements on the step path; `false` behind PgBouncer in "
        "transaction mode",
        default=True,
    )
    # A claim holds no data, so by default it does not wait for its WAL flush (the step's
    # success, which does, flushes it).
    claim_sync_commit: bool = _var(
        "CLAIM_SYNC_COMMIT",
        "`false`: a step's claim does not wait for its WAL flush (a PostgreSQL crash can undo "
        "it; recovery sends the step again); `true` to wait",
        default=False,
    )
    retry_s: float = _var(
        "DB_RETRY_S",
        "how long a step retries its writes while PostgreSQL is down",
        default=120.0,
        ge=0,
    )
    # A step holds a connection only for its claim and its finish, so a few dozen serve
    # hundreds of threads waiting on outside calls; one per thread would exhaust
    # PostgreSQL's max_connections (100 by default) for every other client.
    pool_max: int = _var(
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


class RecoverySettings(_Section):
    """Leases, the recovery sweep and re-sends."""

    lease_grace_s: float = _var(
        "LEASE_GRACE_S",
        "a running step's lease is its timeout plus this",
        default=30.0,
        gt=0,
    )
    interval_s: float = _var(
        "RECOVERY_INTERVAL_S",
        "how often beat runs `recover_stalled_runs`",
        default=30.0,
        gt=0,
    )
    # Covers a crash between commit and publish, and a message lost with Redis; duplicates
    # are dropped by the claim. Bounded by the queue's length (hive/beat/recovery.py).
    redispatch_after_s: float = _var(
        "REDISPATCH_AFTER_S",
        "a step marked sent but never started is sent again after this, if its queue holds "
        "fewer messages than it has steps waiting (else its message may still be there); the "
        "n-th re-send of a step waits this times 2^n, at most 16 times this",
        default=600.0,
        gt=0,
    )
    publish_grace_s: float = _var(
        "PUBLISH_GRACE_S",
        "a step marked sent whose publish was never confirmed (its dispatcher died between "
        "commit and publish) is sent again after this",
        default=30.0,
        gt=0,
    )


class WorkerSettings(_Section):
    """Workers in the registry: how often each heartbeats, and when one is presumed lost."""

    heartbeat_s: float = _var(
        "WORKER_HEARTBEAT_S",
        "how often each `hive worker` records its heartbeat in PostgreSQL (from a thread of "
        "its main process); must be shorter than `HIVE_WORKER_LOST_AFTER_S`",
        default=5.0,
        gt=0,
    )
    lost_after_s: float = _var(
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


class RetentionSettings(_Section):
    """How long finished runs, events and audit records are kept."""

    days: int = _var(
        "RETENTION_DAYS",
        "`purge_retention` deletes finished runs and events older than this",
        default=30,
        ge=1,
    )
    audit_days: int = _var(
        "AUDIT_RETENTION_DAYS",
        "`purge_retention` deletes audit records (`hive audit list`) older than this",
        default=90,
        ge=1,
    )
    purge_interval_s: float = _var(
        "PURGE_INTERVAL_S", "how often beat runs `purge_retention`", default=86400.0, gt=0
    )


class HealthSettings(_Section):
    """The service registry's checks (beat's health sweep and cleanup) and its cap."""

    interval_s: float = _var(
        "HEALTH_INTERVAL_S", "how often beat runs `health_sweep`", default=10.0, gt=0
    )
    cleanup_interval_s: float = _var(
        "CLEANUP_INTERVAL_S", "how often beat runs `cleanup_services`", default=60.0, gt=0
    )
    timeout_s: float = _var(
        "HEALTH_TIMEOUT_S",
        "how long `health_sweep` waits for each health URL's answer, from when its probe starts",
        default=5.0,
        gt=0,
        le=300,
    )
    max_probes: int = _var(
        "HEALTH_MAX_PROBES",
        "the most health URLs `health_sweep` probes at once (one connection each); the rest "
        "wait their turn, taken a tenant at a time",
        default=100,
        ge=1,
        le=10_000,
    )
    failures: int = _var(
        "HEALTH_FAILURES",
        "consecutive failed probes (not 2xx, not 429, or no answer) that make an instance "
        "`critical`; one success makes it `passing` again",
        default=3,
        ge=1,
    )
    max_instances: int = _var(
        "MAX_SERVICE_INSTANCES",
        "the service instances a tenant may have registered; registering another is refused "
        "with 429 until some are deregistered (a heartbeat or re-registration never is). "
        "0: no cap",
        default=1000,
        ge=0,
    )


class GuardSettings(_Section):
    """Fleet-wide limits and breakers on what steps call, and deferred steps."""

    limits_file: Path | None = _var(
        "LIMITS_FILE",
        "the policy file of fleet-wide rate and concurrency limits and circuit breakers "
        "(YAML, see Limits and breakers); empty: no limits, no breakers",
        default=None,
    )
    defer_max_s: float = _var(
        "DEFER_MAX_S",
        "the longest a step may wait deferred in a row (a limit reached, a breaker open) "
        "before it fails for good as `deferred_too_long`",
        default=3600.0,
        gt=0,
    )

    @field_validator("limits_file", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class PipelineSettings(_Section):
    """Where pipelines are read from, and the bounds on what enters and leaves their steps."""

    dir: Path = _var(
        "PIPELINES_DIR", "the folder of pipeline YAML files", default=Path("config/pipelines")
    )
    max_input_bytes: int = _var(
        "MAX_INPUT_BYTES",
        "the largest run input (at submit and `dlq replay --input`) and agent output, as "
        "compact UTF-8 JSON; larger input is refused naming its largest field, larger output "
        "fails the step for good",
        default=1_000_000,
        gt=0,
    )
    # Past about 200 levels, pydantic and Python's recursion limit fail before the check.
    max_input_depth: int = _var(
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
        return _not_blank(value)


class StorageSettings(_Section):
    """Files a process keeps on its own disk."""

    data_dir: Path = _var(
        "DATA_DIR",
        "where `hive beat` keeps its schedule file and `hive flower --persistent` its state "
        "(`flower/`)",
        default=Path(".hive"),
    )

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        return _not_blank(value)


class FlowerSettings(_Section):
    """The Flower dashboard."""

    basic_auth: SecretStr | None = _var(
        "FLOWER_BASIC_AUTH",
        "`user:password` (several joined by commas); `hive flower` refuses to start without it",
        default=None,
    )

    @field_validator("basic_auth")
    @classmethod
    def _user_password(cls, secret: SecretStr | None) -> SecretStr | None:
        value = secret.get_secret_value() if secret else ""
        # Flower takes a comma-separated list of user:password pairs.
        if value and any(
            not user or not password
            for user, _, password in (pair.partition(":") for pair in value.split(","))
        ):
            raise ValueError("must be user:password (both non-empty; several joined by commas)")
        return secret if value else None


class LogSettings(_Section):
    """Log lines."""

    format: Literal["text", "json"] = _var(
        "LOG_FORMAT", "`text`, or `json` for one JSON object a line", default="text"
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = _var(
        "LOG_LEVEL",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`; the default of `--loglevel`, "
        "which wins",
        default="INFO",
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class MetricsSettings(_Section):
    """Prometheus: each worker's own `/metrics` and the farm-wide exporter."""

    port: int = _var(
        "METRICS_PORT",
        "where `hive worker` serves `/metrics` for all its pool processes; `0` turns it off "
        "(`--metrics-port` overrides)",
        default=9808,
        ge=0,
        le=65535,
    )
    exporter_port: int = _var(
        "EXPORTER_PORT",
        "where `hive exporter` serves the farm-wide figures (`--port` overrides)",
        default=9809,
        ge=1,
        le=65535,
    )
    # Prometheus scrapes from another host, as node_exporter is: every interface by default.
    address: str = _var(
        "METRICS_ADDRESS",
        "the address the worker's `/metrics` and `hive exporter` listen on",
        default="0.0.0.0",
        min_length=1,
    )


class HttpSettings(_Section):
    """The `http` agent's calls to services outside the farm."""

    max_response_bytes: int = _var(
        "HTTP_MAX_RESPONSE_BYTES",
        "the largest answer body (decoded) the `http` agent reads; it stops reading there and "
        "fails the step for good",
        default=10_000_000,
        gt=0,
    )


class CredentialSettings(_Section):
    """Which environment variables a pipeline may name as a credential."""

    env_prefixes: str = _var(
        "CREDENTIAL_ENV_PREFIXES",
        "comma-separated prefixes (`PARTNER_,LLM_`) that every variable a step names as a "
        "credential (`auth: {env: ...}`, `api_key_env`) must start with; empty: any name but "
        "`HIVE_*`",
        default="",
    )

    @field_validator("env_prefixes")
    @classmethod
    def _names(cls, value: str) -> str:
        for prefix in _split(value):
            if not _CREDENTIAL_NAME.fullmatch(prefix) or prefix.upper().startswith(_PREFIX):
                raise ValueError(
                    f"{prefix!r} is not the start of a variable name (letters, digits, _), or "
                    "is HIVE_"
                )
        return value

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(_split(self.env_prefixes))


class LlmSettings(_Section):
    """The `llm` agent: what its calls cost."""

    prices_file: Path = _var(
        "LLM_PRICES_FILE",
        "the price table of the `llm` agent (YAML: per model, per 1M input and output "
        "tokens); missing: usage is recorded without a cost",
        default=Path("config/prices.yaml"),
    )

    @field_validator("prices_file", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        return _not_blank(value)


class BudgetSettings(_Section):
    """Cost budgets: a run's `budget_usd`, a tenant's daily budget (`hive budgets`)."""

    warn_at: float = _var(
        "BUDGET_WARN_AT",
        "the fraction of a budget whose spending records a `budget_warning` event and counts "
        "`hive_budget_warnings_total`, once per budget (a run's, or a tenant's UTC day)",
        default=0.8,
        gt=0,
        le=1,
    )


class ApprovalSettings(_Section):
    """Steps held for a person's decision."""

    interval_s: float = _var(
        "APPROVALS_INTERVAL_S",
        "how often beat runs `expire_approvals`, which decides the approvals past their "
        "`approval_timeout`",
        default=30.0,
        gt=0,
    )


class InputGuardSettings(_Section):
    """The input guard before `llm` steps (and the `guard` agent)."""

    rules_file: Path | None = _var(
        "INPUT_GUARD_RULES_FILE",
        "a YAML file of prompt-injection rules added to the shipped ones (a rule with a "
        "shipped rule's id replaces it); empty: the shipped rules alone",
        default=None,
    )

    @field_validator("rules_file", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ApiSettings(_Section):
    """`hive api`: the HTTP producer API and its keys."""

    host: str = _var(
        "API_HOST",
        "the address `hive api` listens on (`--host` overrides); loopback unless told otherwise",
        default="127.0.0.1",
        min_length=1,
    )
    port: int = _var(
        "API_PORT",
        "the port `hive api` listens on (`--port` overrides)",
        default=8080,
        ge=1,
        le=65535,
    )
    # Keys are 256 random bits: a fast keyed hash is as good as a slow one against guessing,
    # and the pepper keeps a stolen table useless without the server's secret.
    key_pepper: SecretStr | None = _var(
        "API_KEY_PEPPER",
        "the server secret API keys are hashed with (HMAC-SHA256; at least 16 characters); "
        "empty: plain SHA-256. Changing it invalidates every key",
        default=None,
    )
    max_body_bytes: int = _var(
        "API_MAX_BODY_BYTES",
        "the largest request body `hive api` reads; larger is refused with 413 (keep it above "
        "`HIVE_MAX_INPUT_BYTES`)",
        default=2_000_000,
        gt=0,
    )
    requests_per_s: float = _var(
        "API_REQUESTS_PER_S",
        "each tenant's sustained request rate across every `hive api` process (shared "
        "through Redis); over it, 429 with `Retry-After`. 0: no limit",
        default=50.0,
        ge=0,
    )
    request_burst: int = _var(
        "API_REQUEST_BURST",
        "the requests a tenant may make at once, idle, above `HIVE_API_REQUESTS_PER_S` "
        "(the `RateLimit-Limit` it is told)",
        default=100,
        ge=1,
    )
    auth_failures_per_s: float = _var(
        "API_AUTH_FAILURES_PER_S",
        "the failed authentications a client address may go on making per second, across every "
        "`hive api` process (shared through Redis), once its burst is spent; over it, a key "
        "that would be looked up in PostgreSQL is answered 429 with `Retry-After` instead. "
        "0: no limit",
        default=1.0,
        ge=0,
    )
    auth_failure_burst: int = _var(
        "API_AUTH_FAILURE_BURST",
        "the failed authentications a client address may make at once, idle, before "
        "`HIVE_API_AUTH_FAILURES_PER_S` holds it back",
        default=20,
        ge=1,
    )
    max_runs_in_flight: int = _var(
        "API_MAX_RUNS_IN_FLIGHT",
        "the unfinished runs a tenant may have when it submits over the API; more is "
        "refused with 429 until some finish. 0: no cap",
        default=10_000,
        ge=0,
    )
    # Single sign-on: tokens an identity provider signs, accepted where a key is.
    jwt_key: SecretStr | None = _var(
        "API_JWT_KEY",
        "the key JWTs are verified with: an issuer's PEM public key (RSA, EC or Ed25519) or a "
        "shared secret of at least 32 characters (HMAC); empty: JWTs are refused",
        default=None,
    )
    jwt_issuer: str = _var(
        "API_JWT_ISSUER",
        "the `iss` a JWT must carry (required with `HIVE_API_JWT_KEY`)",
        default="",
        validate_default=True,
    )
    jwt_audience: str = _var(
        "API_JWT_AUDIENCE",
        "the `aud` a JWT must name",
        default="hive",
        min_length=1,
    )
    trusted_proxies: str = _var(
        "API_TRUSTED_PROXIES",
        "comma-separated addresses or networks (`10.0.0.0/8`) of the proxies in front of "
        "`hive api`: from them alone `X-Forwarded-For` names the client (the audit trail's "
        "address, the failed-authentication limit); empty: the connection's peer",
        default="",
    )
    cors_origins: str = _var(
        "API_CORS_ORIGINS",
        "comma-separated origins (`https://app.example.com`) browsers may call the API from; "
        "empty: CORS off",
        default="",
    )

    @field_validator("key_pepper")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        value = secret.get_secret_value() if secret else ""
        if value and len(value) < 16:
            raise ValueError("must be at least 16 characters (or empty)")
        return secret if value else None

    @field_validator("jwt_key")
    @classmethod
    def _verifying_key(cls, secret: SecretStr | None) -> SecretStr | None:
        value = secret.get_secret_value().strip() if secret else ""
        if not value:
            return None
        if value.startswith("-----BEGIN"):
            if "PRIVATE KEY" in value.split("\n", 1)[0]:
                raise ValueError("is a private key: give the issuer's public key")
            try:  # cryptography comes with the api extra, which `hive api` needs anyway
                from cryptography.hazmat.primitives.serialization import load_pem_public_key
            except ImportError:
                return SecretStr(value)
            try:
                load_pem_public_key(value.encode())
            except (ValueError, TypeError):
                raise ValueError("is not a PEM public key this server can read") from None
        elif len(value) < 32:
            raise ValueError("must be a PEM public key or a secret of at least 32 characters")
        return SecretStr(value)

    @field_validator("jwt_issuer")
    @classmethod
    def _issuer_with_key(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("jwt_key") is not None and not value.strip():
            raise ValueError("is required when HIVE_API_JWT_KEY is set")
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for proxy in _split(value):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an address or a network (`*` is not accepted: any "
                    "client could then name itself)"
                ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in _split(value):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"{origin!r} is not an origin (scheme://host[:port]; `*` is not accepted)"
                )
        return value

    @property
    def origins(self) -> list[str]:
        return _split(self.cors_origins)

    @property
    def proxies(self) -> list[str]:
        return _split(self.trusted_proxies)


class Settings(BaseModel):
    """All of Hive's configuration, by section. Built from the environment by
    :func:`load_settings`; each section can also be given whole (tests, embedding)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    recovery: RecoverySettings = Field(default_factory=RecoverySettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    pipelines: PipelineSettings = Field(default_factory=PipelineSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    flower: FlowerSettings = Field(default_factory=FlowerSettings)
    logs: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    input_guard: InputGuardSettings = Field(default_factory=InputGuardSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)


def _split(listed: str) -> list[str]:
    return [item.strip() for item in listed.split(",") if item.strip()]


def _not_blank(value: object) -> object:
    """A path setting given as blank text: refused (``Path("")`` is the working directory)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


_TLS_QUERY = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_CERT_REQS = ("none", "optional", "required")


def _check_redis_url(value: str) -> None:
    """A redis:// or rediss:// URL's shape; Hive's own clients (redis-py) read it too."""
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
    # Celery's kombu takes no query parameter but ssl_* ones (any other stops every publish
    # with a TypeError), and redis-py, Hive's own client, takes those only over TLS.
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in _TLS_QUERY:
            raise ValueError(
                f"has a query parameter {key!r} that Celery cannot take; the only ones are "
                f"{', '.join(_TLS_QUERY)} (with rediss://)"
            )
        if parts.scheme != "rediss":
            raise ValueError(f"sets {key}, but {key} is for rediss:// (TLS) URLs only")
        if key == "ssl_cert_reqs" and values[-1] not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be {', '.join(_CERT_REQS)}")


# An environment variable's name as a shell would accept it.
_CREDENTIAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREDENTIAL_NAME_MAX_CHARS = 200


def credential_name_problem(env_name: object) -> str | None:
    """Why ``env_name`` can never name a credential, or None. The agents' input models
    check it when a pipeline loads, :func:`credential` again at call time. Never quotes a
    malformed name: it may be the secret itself, given where its name belongs."""
    if not _well_formed(env_name):
        return (
            "must be the name of an environment variable (letters, digits and _, at most "
            f"{_CREDENTIAL_NAME_MAX_CHARS}), not its value"
        )
    if env_name.upper().startswith(_PREFIX):
        # Hive's own settings hold its servers' passwords: never sent to a service.
        return f"{env_name} is one of Hive's own settings, not a credential a step may use"
    return None


def _well_formed(env_name: object) -> TypeGuard[str]:
    return (
        isinstance(env_name, str)
        and len(env_name) <= _CREDENTIAL_NAME_MAX_CHARS
        and _CREDENTIAL_NAME.fullmatch(env_name) is not None
    )


def credential(env_name: str) -> str:
    """The value of the environment variable ``env_name``, read now: a credential a step
    names (``auth: {env: PARTNER_TOKEN}``, ``api_key_env``). Steps carry the variable's
    name only; the value is read on the worker at call time and must never be stored,
    logged or put in a message.

    Raises:
        CredentialError: (a PermanentError) the name is malformed, a ``HIVE_*`` one,
            outside ``HIVE_CREDENTIAL_ENV_PREFIXES``, or the variable is not set (or
            empty); the message names the variable, never a value.
    """
    problem = credential_name_problem(env_name)
    if problem is not None:
        raise CredentialError(env_name if _well_formed(env_name) else None, problem)
    allowed = get_settings().credentials.prefixes
    if allowed and not env_name.startswith(allowed):
        raise CredentialError(
            env_name,
            f"{env_name} is outside HIVE_CREDENTIAL_ENV_PREFIXES ({', '.join(allowed)})",
        )
    if not os.environ.get(env_name):
        raise CredentialError(
            env_name, f"the environment variable {env_name} is not set on this worker"
        )
    return os.environ[env_name]


def sections() -> dict[str, type[_Section]]:
    """Each section's attribute name on :class:`Settings` and its class."""
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
    }


def variables() -> list[tuple[str, FieldInfo]]:
    """Every ``HIVE_*`` variable and the field that reads it, in declaration order."""
    found = []
    for section in sections().values():
        for field in section.model_fields.values():
            alias = field.validation_alias
            assert isinstance(alias, AliasChoices)
            found.append((str(alias.choices[0]), field))
    return found


def describe() -> list[tuple[str, str, str]]:
    """Each variable, its default as the README shows it, and its description: the README's
    settings table is made of these rows (a test holds them equal)."""
    rows = []
    for variable, field in variables():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if default in ("", None):
            shown = "empty"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, float):
            shown = f"`{default:g}`"
        else:
            shown = f"`{default}`"
        rows.append((variable, shown, field.description or ""))
    return rows


# Celery reads these from the environment ahead of its configuration: set, they would move
# Celery's connections while Hive's own Redis clients (recovery, locks, checks) kept Hive's.
_CELERY_OVERRIDES = {
    "CELERY_BROKER_URL": "HIVE_BROKER_URL",
    "CELERY_BROKER_READ_URL": "HIVE_BROKER_URL",
    "CELERY_BROKER_WRITE_URL": "HIVE_BROKER_URL",
    "CELERY_RESULT_BACKEND": "HIVE_RESULT_BACKEND",
}


def _celery_overrides() -> list[tuple[str, str]]:
    # Celery ignores an empty one (it reads them with `or`).
    return [
        (
            variable,
            f"is set and would take Celery away from {ours}, which Hive's own clients use; "
            f"unset it and set {ours} only",
        )
        for variable, ours in _CELERY_OVERRIDES.items()
        if os.environ.get(variable)
    ]


def _variable_of(section: type[_Section], name: str) -> str:
    """The ``HIVE_*`` variable read by the field ``name`` (a variable's name is kept)."""
    field = section.model_fields.get(name)
    alias = field.validation_alias if field else None
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else name


def load_settings() -> Settings:
    """Read the settings from the environment.

    Raises:
        SettingsError: one or more variables are malformed; names every one of them.
    """
    built: dict[str, _Section] = {}
    problems = _celery_overrides()
    for name, section in sections().items():
        try:
            built[name] = section()
        except ValidationError as exc:
            for error in exc.errors():
                variable = str(error["loc"][0]) if error["loc"] else "?"
                # A default checked against another field's value is reported by field name.
                variable = _variable_of(section, variable)
                problems.append((variable.upper(), error["msg"].removeprefix("Value error, ")))
    if problems:
        raise SettingsError.of(problems)
    return Settings.model_validate(built)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
