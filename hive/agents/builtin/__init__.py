"""The agents that ship with Hive; ``AgentRegistry.discover`` registers every one of them."""

from __future__ import annotations

from hive.agents.base import Agent
from hive.agents.builtin.guard import GuardAgent
from hive.agents.builtin.http import HttpAgent
from hive.agents.builtin.llm import LlmAgent
from hive.agents.builtin.merge import MergeAgent
from hive.agents.builtin.pii import PiiRedactAgent
from hive.agents.builtin.sentiment import SentimentAgent
from hive.agents.builtin.testing import EchoAgent, FailAgent, SleepAgent
from hive.agents.builtin.text import KeywordsAgent, SummarizeAgent

BUILTIN_AGENTS: list[type[Agent]] = [  # type: ignore[type-arg]
    EchoAgent,
    PiiRedactAgent,
    KeywordsAgent,
    SummarizeAgent,
    SentimentAgent,
    MergeAgent,
    HttpAgent,
    SleepAgent,
    FailAgent,
    LlmAgent,
    GuardAgent,
]

__all__ = [
    "BUILTIN_AGENTS",
    "EchoAgent",
    "FailAgent",
    "GuardAgent",
    "HttpAgent",
    "KeywordsAgent",
    "LlmAgent",
    "MergeAgent",
    "PiiRedactAgent",
    "SentimentAgent",
    "SleepAgent",
    "SummarizeAgent",
]
