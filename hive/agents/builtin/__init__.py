"""The agents that ship with Hive; ``AgentRegistry.discover`` registers every one of them."""

from __future__ import annotations

from hive.agents.base import Agent
from hive.agents.builtin.merge import MergeAgent
from hive.agents.builtin.pii import PiiRedactAgent
from hive.agents.builtin.sentiment import SentimentAgent
from hive.agents.builtin.testing import (
    CrashAgent,
    EchoAgent,
    FailAgent,
    HangAgent,
    NulErrorAgent,
    SleepAgent,
)
from hive.agents.builtin.text import KeywordsAgent, SummarizeAgent

BUILTIN_AGENTS: list[type[Agent]] = [  # type: ignore[type-arg]
    EchoAgent,
    PiiRedactAgent,
    KeywordsAgent,
    SummarizeAgent,
    SentimentAgent,
    MergeAgent,
    SleepAgent,
    FailAgent,
    CrashAgent,
    HangAgent,
    NulErrorAgent,
]

__all__ = [
    "BUILTIN_AGENTS",
    "CrashAgent",
    "EchoAgent",
    "FailAgent",
    "HangAgent",
    "KeywordsAgent",
    "MergeAgent",
    "NulErrorAgent",
    "PiiRedactAgent",
    "SentimentAgent",
    "SleepAgent",
    "SummarizeAgent",
]
