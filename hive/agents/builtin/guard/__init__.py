"""The input guard's checks, shared by the farm (:mod:`hive.screening`, before a step's
agent runs) and the ``guard`` agent: personal data redacted with the ``pii_redact``
agent's detectors, and prompt injection scored by rules from a data file users extend."""

from hive.agents.builtin.guard.agent import GuardAgent, GuardInput, GuardOutput
from hive.agents.builtin.guard.rules import RuleSet, rule_set
from hive.agents.builtin.guard.scan import Injection, redact_pii, score_injection

__all__ = [
    "GuardAgent",
    "GuardInput",
    "GuardOutput",
    "Injection",
    "RuleSet",
    "redact_pii",
    "rule_set",
    "score_injection",
]
