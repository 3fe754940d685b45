"""The test venv's workers run the test-only agents, installed from tests/agents."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hive import Client
from tests.support.processes import HiveProcess


@pytest.mark.timeout(120)
def test_a_worker_of_the_test_venv_runs_the_crash_agent_from_the_test_package(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "1")

    # times=0: the agent runs and survives, which only a registered crash agent can do.
    run = Client().submit("fault-crash", {"times": 0})

    assert run.wait(timeout=60) == {"after": {"text": "survived"}}
