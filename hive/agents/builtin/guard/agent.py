"""The ``guard`` agent: the input guard's check on one text, as a step of its own."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hive.agents.base import Agent, AgentContext, AgentOptions
from hive.agents.builtin.guard.rules import rule_set
from hive.agents.builtin.guard.scan import redact_pii, score_injection
from hive.agents.governance import PII_TYPES, PiiType
from hive.errors import PermanentError, SettingsError


class GuardInput(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    text: str
    pii: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES),
        description="the types of personal data to redact; off (or []) for none",
    )
    threshold: float = Field(default=0.5, gt=0, le=1, description="the score that is flagged")

    @field_validator("pii", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return [] if value is False or value == "off" else value


class GuardOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["clean", "suspicious"] = Field(
        description="suspicious: the injection score reached the threshold"
    )
    score: float = Field(description="the injection score, 0 to 1")
    threshold: float
    rules: list[str] = Field(description="ids of the injection rules matched (never the text)")
    categories: list[str]
    redacted: str = Field(description="the text with the personal data replaced by [KIND]")
    pii: dict[str, int] = Field(description="replacements per type asked for, zero included")


class GuardAgent(Agent[GuardInput, GuardOutput]):
    """Screens a text as the input guard does: PII redacted, prompt injection scored."""

    name = "guard"
    version = "1"
    input_model = GuardInput
    output_model = GuardOutput
    options = AgentOptions(timeout=60.0)

    def run(self, data: GuardInput, ctx: AgentContext) -> GuardOutput:
        """Screen ``data.text``.

        Args:
            data: the text, the PII types to redact and the threshold.
            ctx: the step this call belongs to.

        Returns:
            The verdict, the score and the rules matched, and the redacted text.

        Raises:
            PermanentError: the rules file (``HIVE_INPUT_GUARD_RULES_FILE``) is malformed.
        """
        try:
            rules = rule_set()
        except SettingsError as exc:
            raise PermanentError(str(exc)) from None
        found = score_injection([data.text], rules)
        redacted, counts = redact_pii(data.text, data.pii)
        verdict: Literal["clean", "suspicious"] = (
            "suspicious" if found.score >= data.threshold else "clean"
        )
        ctx.logger.debug("screened: %s, score %s", verdict, found.score)
        return GuardOutput(
            verdict=verdict,
            score=found.score,
            threshold=data.threshold,
            rules=found.rules,
            categories=found.categories,
            redacted=redacted,
            pii=counts,
        )
