"""Agents that exist only for tests (crash, hang, nul_error) are not in the product: the test set-up
installs them from tests/agents through the same entry point as any third-party agent."""

from __future__ import annotations

from importlib.metadata import distribution, entry_points

from hive.agents import BUILTIN_AGENTS, AgentRegistry
from hive.agents.registry import ENTRY_POINT_GROUP

TEST_ONLY = {"crash", "hang", "nul_error", "chatty", "retry_after", "defer"}


def test_the_product_registers_no_test_only_agent() -> None:
    # What a production install registers: the built-ins and hive's own entry points.
    assert not TEST_ONLY & {agent.name for agent in BUILTIN_AGENTS}
    shipped = [ep for ep in distribution("hive").entry_points if ep.group == ENTRY_POINT_GROUP]
    assert shipped == []


def test_a_registry_of_the_builtins_alone_has_no_crash_or_hang() -> None:
    registry = AgentRegistry()
    for agent in BUILTIN_AGENTS:
        registry.register(agent)

    assert not TEST_ONLY & set(registry.names())
    assert {"sleep", "fail", "echo"} <= set(registry.names()), "sleep and fail stay built in"


def test_the_test_venv_registers_crash_and_hang_from_the_test_package() -> None:
    providers = {
        ep.name: ep.dist.name if ep.dist else None
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.name in TEST_ONLY
    }
    assert providers == dict.fromkeys(TEST_ONLY, "hive-test-agents")

    registry = AgentRegistry.discover()
    assert registry.broken == {}
    for name in TEST_ONLY:
        agent = registry.get(name)
        assert agent is not None
        assert agent.__module__ == "hive_test_agents"
