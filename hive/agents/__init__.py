"""Agents: named, versioned functions from a validated input to a validated output.

Nothing here knows of Celery or the database (see ``ARCHITECTURE.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hive.agents.base import (
    Agent,
    AgentContext,
    AgentOptions,
    CallGuard,
    CallTicket,
    Resource,
    ServiceLookup,
)
from hive.agents.registry import AgentRegistry, default_registry

if TYPE_CHECKING:
    from hive.agents.builtin import BUILTIN_AGENTS

__all__ = [
    "BUILTIN_AGENTS",
    "Agent",
    "AgentContext",
    "AgentOptions",
    "AgentRegistry",
    "CallGuard",
    "CallTicket",
    "Resource",
    "ServiceLookup",
    "default_registry",
]


def __getattr__(name: str) -> Any:
    # The built-in agents (httpx, the llm agent's models) load when first asked for: every
    # ``hive`` command imports hive.agents.base (pipelines, the service layer), few run one.
    if name == "BUILTIN_AGENTS":
        from hive.agents.builtin import BUILTIN_AGENTS

        return BUILTIN_AGENTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
