"""AgentRegistry: the built-in agents plus those published under ``hive.agents`` entry points."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from hive.agents.base import Agent

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hive.agents"


class AgentRegistry:
    """Name → agent class."""

    def __init__(self) -> None:
        self._agents: dict[str, type[Agent]] = {}  # type: ignore[type-arg]

    def register(self, agent: type[Agent]) -> type[Agent]:  # type: ignore[type-arg]
        """Add an agent class; usable as a decorator."""
        existing = self._agents.get(agent.name)
        if existing is not None and existing is not agent:
            raise ValueError(f"two agents are named {agent.name!r}: {existing!r} and {agent!r}")
        self._agents[agent.name] = agent
        return agent

    def get(self, name: str) -> type[Agent] | None:  # type: ignore[type-arg]
        return self._agents.get(name)

    def names(self) -> list[str]:
        return sorted(self._agents)

    def all(self) -> list[type[Agent]]:  # type: ignore[type-arg]
        return [self._agents[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    @classmethod
    def discover(cls) -> AgentRegistry:
        """The built-ins plus every agent class published under the ``hive.agents`` entry point."""
        from hive.agents.builtin import BUILTIN_AGENTS

        registry = cls()
        for agent in BUILTIN_AGENTS:
            registry.register(agent)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                registry.register(ep.load())
            except Exception:
                logger.exception("could not load agent entry point %s", ep.name)
        return registry


_default: AgentRegistry | None = None


def default_registry() -> AgentRegistry:
    """The process's registry, discovered once."""
    global _default
    if _default is None:
        _default = AgentRegistry.discover()
    return _default
