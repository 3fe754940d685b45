"""Agents: named, versioned functions from a validated input to a validated output.

Nothing here knows of Celery or the database (see ``ARCHITECTURE.md``).
"""

from __future__ import annotations

from hive.agents.base import (
    Agent,
    AgentContext,
    AgentOptions,
    CallGuard,
    CallTicket,
    Resource,
    ServiceLookup,
)
from hive.agents.builtin import BUILTIN_AGENTS
from hive.agents.registry import AgentRegistry, default_registry

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
