"""The sections of steps that call the outside world and of their guardrails: limits and
breakers, the `http` and `llm` agents, credentials, budgets, approvals, the input guard.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from hive.settings.fields import CREDENTIAL_NAME, PREFIX, Section, not_blank, split_list, var


class GuardSettings(Section):
    """Fleet-wide limits and breakers on what steps call, and deferred steps."""

    limits_file: Path | None = var(
        "LIMITS_FILE",
        "the policy file of fleet-wide rate and concurrency limits and circuit breakers "
        "(YAML, see Limits and breakers); empty: no limits, no breakers",
        default=None,
    )
    defer_max_s: float = var(
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


class HttpSettings(Section):
    """The `http` agent's calls to services outside the farm."""

    max_response_bytes: int = var(
        "HTTP_MAX_RESPONSE_BYTES",
        "the largest answer body (decoded) the `http` and `llm` agents read; they stop "
        "reading there: an `http` step fails for good, an `llm` provider counts as down",
        default=10_000_000,
        gt=0,
    )


class CredentialSettings(Section):
    """Which environment variables a pipeline may name as a credential."""

    env_prefixes: str = var(
        "CREDENTIAL_ENV_PREFIXES",
        "comma-separated prefixes (`PARTNER_,LLM_`) that every variable a step names as a "
        "credential (`auth: {env: ...}`, `api_key_env`) must start with; empty: any name but "
        "`HIVE_*`",
        default="",
    )

    @field_validator("env_prefixes")
    @classmethod
    def _names(cls, value: str) -> str:
        for prefix in split_list(value):
            if not CREDENTIAL_NAME.fullmatch(prefix) or prefix.upper().startswith(PREFIX):
                raise ValueError(
                    f"{prefix!r} is not the start of a variable name (letters, digits, _), or "
                    "is HIVE_"
                )
        return value

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(split_list(self.env_prefixes))


class LlmSettings(Section):
    """The `llm` agent: what its calls cost."""

    prices_file: Path = var(
        "LLM_PRICES_FILE",
        "the price table of the `llm` agent (YAML: per model, per 1M input and output "
        "tokens); missing: usage is recorded without a cost",
        default=Path("config/prices.yaml"),
    )

    @field_validator("prices_file", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        return not_blank(value)


class BudgetSettings(Section):
    """Cost budgets: a run's `budget_usd`, a tenant's daily budget (`hive budgets`)."""

    warn_at: float = var(
        "BUDGET_WARN_AT",
        "the fraction of a budget whose spending records a `budget_warning` event and counts "
        "`hive_budget_warnings_total`, once per budget (a run's, or a tenant's UTC day)",
        default=0.8,
        gt=0,
        le=1,
    )


class ApprovalSettings(Section):
    """Steps held for a person's decision."""

    interval_s: float = var(
        "APPROVALS_INTERVAL_S",
        "how often beat runs `expire_approvals`, which decides the approvals past their "
        "`approval_timeout`",
        default=30.0,
        gt=0,
    )


class InputGuardSettings(Section):
    """The input guard before `llm` steps (and the `guard` agent)."""

    rules_file: Path | None = var(
        "INPUT_GUARD_RULES_FILE",
        "a YAML file of prompt-injection rules added to the shipped ones (a rule with a "
        "shipped rule's id replaces it); empty: the shipped rules alone",
        default=None,
    )

    @field_validator("rules_file", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
