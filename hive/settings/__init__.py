"""Hive's settings: the only package that reads the environment.

Every setting is an environment variable with the prefix ``HIVE_``; in code they are grouped
into sections (``settings.database.url``, ``settings.recovery.lease_grace_s``...), each a
``BaseSettings`` of its own that reads its variables by their full names, so the names stay
flat and stable while the code reads by area. Nothing is read at import time: call
:func:`get_settings`. Every malformed variable is reported at once, by name, and never with
its value (URLs and the Flower setting carry passwords, hence ``SecretStr``).

Modules, one concept each: ``fields`` (how a variable is declared), ``farm``, ``operations``,
``outside`` and ``api`` (the sections), ``loading`` (:class:`Settings`, :func:`get_settings`),
``credentials`` (a step's credential, read at call time).
"""

from hive.settings.api import ApiSettings
from hive.settings.credentials import credential, credential_name_problem
from hive.settings.farm import (
    BrokerSettings,
    DatabaseSettings,
    PipelineSettings,
    RecoverySettings,
    RetentionSettings,
    StorageSettings,
    WorkerSettings,
)
from hive.settings.loading import (
    Settings,
    describe,
    get_settings,
    load_settings,
    sections,
    variables,
)
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

__all__ = [
    "ApiSettings",
    "ApprovalSettings",
    "BrokerSettings",
    "BudgetSettings",
    "CredentialSettings",
    "DatabaseSettings",
    "FlowerSettings",
    "GuardSettings",
    "HealthSettings",
    "HttpSettings",
    "InputGuardSettings",
    "LlmSettings",
    "LogSettings",
    "MetricsSettings",
    "PipelineSettings",
    "RecoverySettings",
    "RetentionSettings",
    "Settings",
    "StorageSettings",
    "WorkerSettings",
    "credential",
    "credential_name_problem",
    "describe",
    "get_settings",
    "load_settings",
    "sections",
    "variables",
]
