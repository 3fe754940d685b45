"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.flower import AUTH, Flower
from tests.support.llm_server import LlmServer
from tests.support.processes import HiveProcess, wait_until
from tests.support.redis_server import free_port


@pytest.fixture
def env(hive_env: dict[str, str], clean_state: None) -> dict[str, str]:
    """Environment for `hive` and producer subprocesses of this session, on clean state."""
    return {**os.environ, **hive_env}


LLM_SERVICE = "llm-test"


@pytest.fixture
def llm(clean_state: None) -> Iterator[LlmServer]:
    """The OpenAI-compatible test server, registered as service ``llm-test``, the name the
    llm test pipelines give (the server's port is a free one, and a base URL from the run's
    input is refused: it could send the API key elsewhere)."""
    from hive import Client

    server = LlmServer()
    try:
        Client().services.register(LLM_SERVICE, server.url)
        yield server
    finally:
        server.close()


@pytest.fixture
def start_flower(
    hive_env: dict[str, str], tmp_path: Path, clean_state: None
) -> Iterator[Callable[..., Flower]]:
    """Start `hive flower` processes with a password (AUTH); each stopped by PID at the end."""
    started: list[HiveProcess] = []

    def start(
        *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None
    ) -> Flower:
        port = free_port()
        env = {
            **os.environ,
            **hive_env,
            "HIVE_FLOWER_BASIC_AUTH": ":".join(AUTH),
            **(extra_env or {}),
        }
        name = f"flower{len(started)}"
        proc = HiveProcess(
            ["flower", "--port", str(port), *args], env, tmp_path / f"{name}.log", cwd=cwd
        )
        started.append(proc)
        proc.wait_for_log("Visit me at", timeout_s=60)
        flower = Flower(proc, port)
        wait_until(lambda: flower.call("GET", "/api/workers")[0] == 200, 30, "flower's API")
        return flower

    yield start
    for proc in started:
        proc.stop()
