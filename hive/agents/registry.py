"""AgentRegistry: the built-in agents plus those published under ``hive.agents`` entry points."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from pydantic import BaseModel

from hive.agents.base import Agent, AgentOptions

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hive.agents"


class AgentRegistry:
    """Name → agent class."""

    def __init__(self) -> None:
        self._agents: dict[str, type[Agent]] = {}  # type: ignore[type-arg]
        self.broken: dict[str, str] = {}
        """Entry point name → why it could not be loaded (filled by :meth:`discover`)."""

    def register(self, agent: object) -> type[Agent]:  # type: ignore[type-arg]
        """Add an agent class; usable as a decorator.

        Raises:
            TypeError: ``agent`` is not an :class:`Agent` subclass with a complete contract.
            ValueError: another class already has the agent's name.
        """
        checked = _checked_agent(agent)
        existing = self._agents.get(checked.name)
        if existing is not None and existing is not checked:
            raise ValueError(f"two agents are named {checked.name!r}: {existing!r} and {checked!r}")
        self._agents[checked.name] = checked
        return checked

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
        """The built-ins plus every agent class published under the ``hive.agents`` entry point.

        An entry point that cannot be imported, or does not name a valid agent class,
        is logged in one line and recorded in :attr:`broken`; the other agents stay usable.
        """
        from hive.agents.builtin import BUILTIN_AGENTS

        registry = cls()
        for agent in BUILTIN_AGENTS:
            registry.register(agent)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                registry.register(ep.load())
            except Exception as exc:
                problem = f"{ep.value}: {type(exc).__name__}: {exc}"
                registry.broken[ep.name] = problem
                # One line per broken plugin; the traceback only when debugging.
                logger.error(
                    "agent entry point %r not loaded (%s)",
                    ep.name,
                    problem,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
        return registry


def _checked_agent(agent: object) -> type[Agent]:  # type: ignore[type-arg]
    """``agent`` itself, once it is known to be a usable Agent subclass."""
    if not isinstance(agent, type) or not issubclass(agent, Agent):
        raise TypeError(f"{agent!r} is not a subclass of hive.agents.Agent")
    problems: list[str] = []
    name = getattr(agent, "name", None)
    if not isinstance(name, str) or not name:
        problems.append("name must be a non-empty string")
    if not isinstance(agent.version, str):
        problems.append("version must be a string")
    for attribute in ("input_model", "output_model"):
        model = getattr(agent, attribute, None)
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            problems.append(f"{attribute} must be a pydantic model class")
    if not isinstance(agent.options, AgentOptions):
        problems.append("options must be an AgentOptions")
    if problems:
        raise TypeError(f"agent class {agent.__qualname__}: " + "; ".join(problems))
    return agent


_default: AgentRegistry | None = None


def default_registry() -> AgentRegistry:
    """The process's registry, discovered once."""
    global _default
    if _default is None:
        _default = AgentRegistry.discover()
    return _default
