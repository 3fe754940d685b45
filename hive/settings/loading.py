"""All the sections as one :class:`Settings`, read from the environment once per process;
the list of variables the README's settings table is made of.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from hive.errors import SettingsError
from hive.settings.api import ApiSettings
from hive.settings.farm import (
    BrokerSettings,
    DatabaseSettings,
    PipelineSettings,
    RecoverySettings,
    RetentionSettings,
    StorageSettings,
    WorkerSettings,
)
from hive.settings.fields import Section
from hive.settings.operations import FlowerSettings, HealthSettings, LogSettings, MetricsSettings
from hive.settings.outside import (
    ApprovalSettings,
    BudgetSettings,
    CredentialSettings,
    GuardSettings,
    HttpSettings,
    InputGuardSettings,
    LlmSettings,
)


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


def sections() -> dict[str, type[Section]]:
    """Each section's attribute name on :class:`Settings` and its class."""
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section)
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


def _variable_of(section: type[Section], name: str) -> str:
    """The ``HIVE_*`` variable read by the field ``name`` (a variable's name is kept)."""
    field = section.model_fields.get(name)
    alias = field.validation_alias if field else None
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else name


def load_settings() -> Settings:
    """Read the settings from the environment.

    Raises:
        SettingsError: one or more variables are malformed; names every one of them.
    """
    built: dict[str, Section] = {}
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
