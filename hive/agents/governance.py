"""The step options that govern whether and how a step may run, beyond how it is run:
human approval (``approval``, ``approval_timeout``, ``approval_timeout_action``) and the
input guard (``input_guard``). Fields of :class:`hive.agents.base.AgentOptions`, so an
agent may set a default for its steps and a pipeline step may override it.

YAML 1.1 reads a bare ``off`` (and ``no``) as ``false``: both spellings mean ``off`` here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

PiiType = Literal["email", "phone", "ip", "credit_card", "ssn"]
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "ip", "credit_card", "ssn")
"""What the input guard can redact: the ``pii_redact`` agent's kinds, in lower case."""
InjectionAction = Literal["flag", "block", "escalate", "off"]
TimeoutAction = Literal["reject", "approve"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# An approval may wait a year at most: past that it is a forgotten run, not a decision.
MAX_APPROVAL_TIMEOUT_S = 366 * 86400.0


def duration_s(value: Any) -> Any:
    """``30``, ``"30s"``, ``"10m"``, ``"2h"``, ``"7d"`` as seconds; anything else as given,
    for the field's own check to refuse."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise PydanticCustomError(
                "duration", "a duration is seconds or a number with s, m, h or d (30m, 2h)"
            )
        return float(match.group(1)) * _SECONDS[match.group(2)]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class InputGuardOptions(BaseModel):
    """What the input guard does before a step's agent runs (the ``llm`` agent's default:
    every PII type redacted, injections flagged).

    ``pii``: the types redacted from the prompt, or ``off`` (stored as ``[]``).
    ``injection``: what a prompt scoring ``threshold`` or more on the injection rules does:
    ``flag`` (an event, the step goes on), ``block`` (the step fails for good), ``escalate``
    (a person decides), ``off``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    pii: list[PiiType] = Field(default_factory=lambda: list(PII_TYPES))
    """The types redacted; ``off`` (or an empty list): none."""
    injection: InjectionAction = "flag"
    threshold: float = Field(
        default=0.5, gt=0, le=1, description="the injection score (0-1) that acts"
    )

    @field_validator("pii", mode="before")
    @classmethod
    def _pii_off(cls, value: Any) -> Any:
        return [] if value is False or value == "off" else value

    @field_validator("injection", mode="before")
    @classmethod
    def _injection_off(cls, value: Any) -> Any:
        return "off" if value is False else value

    @field_validator("pii")
    @classmethod
    def _distinct(cls, value: list[PiiType]) -> list[PiiType]:
        return sorted(set(value), key=PII_TYPES.index)

    @property
    def active(self) -> bool:
        """Whether the guard does anything at all."""
        return bool(self.pii) or self.injection != "off"


def guard_options(value: Any) -> Any:
    """``input_guard: off`` (or ``false``) as a guard that does nothing."""
    if value is False or value == "off":
        return {"pii": [], "injection": "off"}
    return value
