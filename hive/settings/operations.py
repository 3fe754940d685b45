"""The sections of what operators watch and run beside the farm: the service registry's
health checks, Flower, logs and metrics.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator

from hive.settings.fields import Section, var


class HealthSettings(Section):
    """The service registry's checks (beat's health sweep and cleanup) and its cap."""

    interval_s: float = var(
        "HEALTH_INTERVAL_S", "how often beat runs `health_sweep`", default=10.0, gt=0
    )
    cleanup_interval_s: float = var(
        "CLEANUP_INTERVAL_S", "how often beat runs `cleanup_services`", default=60.0, gt=0
    )
    timeout_s: float = var(
        "HEALTH_TIMEOUT_S",
        "how long `health_sweep` waits for each health URL's answer, from when its probe starts",
        default=5.0,
        gt=0,
        le=300,
    )
    max_probes: int = var(
        "HEALTH_MAX_PROBES",
        "the most health URLs `health_sweep` probes at once (one connection each); the rest "
        "wait their turn, taken a tenant at a time",
        default=100,
        ge=1,
        le=10_000,
    )
    failures: int = var(
        "HEALTH_FAILURES",
        "consecutive failed probes (not 2xx, not 429, or no answer) that make an instance "
        "`critical`; one success makes it `passing` again",
        default=3,
        ge=1,
    )
    max_instances: int = var(
        "MAX_SERVICE_INSTANCES",
        "the service instances a tenant may have registered; registering another is refused "
        "with 429 until some are deregistered (a heartbeat or re-registration never is). "
        "0: no cap",
        default=1000,
        ge=0,
    )


class FlowerSettings(Section):
    """The Flower dashboard."""

    basic_auth: SecretStr | None = var(
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


class LogSettings(Section):
    """Log lines."""

    format: Literal["text", "json"] = var(
        "LOG_FORMAT", "`text`, or `json` for one JSON object a line", default="text"
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = var(
        "LOG_LEVEL",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`; the default of `--loglevel`, "
        "which wins",
        default="INFO",
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class MetricsSettings(Section):
    """Prometheus: each worker's own `/metrics` and the farm-wide exporter."""

    port: int = var(
        "METRICS_PORT",
        "where `hive worker` serves `/metrics` for all its pool processes; `0` turns it off "
        "(`--metrics-port` overrides)",
        default=9808,
        ge=0,
        le=65535,
    )
    exporter_port: int = var(
        "EXPORTER_PORT",
        "where `hive exporter` serves the farm-wide figures (`--port` overrides)",
        default=9809,
        ge=1,
        le=65535,
    )
    # Prometheus scrapes from another host, as node_exporter is: every interface by default.
    address: str = var(
        "METRICS_ADDRESS",
        "the address the worker's `/metrics` and `hive exporter` listen on",
        default="0.0.0.0",
        min_length=1,
    )
