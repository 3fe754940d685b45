"""Fixtures for integration, e2e and fault tests: real PostgreSQL, real Redis, real workers."""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support import services
from tests.support.processes import HiveProcess

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "config" / "pipelines"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of this test session's own, migrated once."""
    name, url = services.create_database()
    from hive.db.migrate import upgrade

    upgrade(url)
    yield url
    services.drop_database(name)


@pytest.fixture(scope="session")
def redis_db() -> Iterator[tuple[redis.Redis, int]]:
    client, index = services.claim_redis_db()
    yield client, index
    client.flushdb()


def _test_agent_names() -> list[str]:
    """The agents tests/agents registers, as its pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "tests" / "agents" / "pyproject.toml").read_text())
    return list(project["project"]["entry-points"]["hive.agents"])


@pytest.fixture(scope="session")
def pipelines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped pipelines plus the test pipelines."""
    from hive.agents.registry import default_registry

    # The fault pipelines use agents the product does not ship (tests/agents).
    missing = sorted(set(_test_agent_names()) - set(default_registry().names()))
    if missing:
        pytest.fail(
            f"test-only agents {', '.join(missing)} are not installed: run the tests with "
            "`make test`, or `pip install -e tests/agents` first"
        )
    target = tmp_path_factory.mktemp("pipelines")
    test_pipelines = [
        *(ROOT / "tests").glob("pipelines/*.yaml"),
        *(ROOT / "tests").glob("*/pipelines/*.yaml"),
    ]
    for source in [*PIPELINES.glob("*.yaml"), *test_pipelines]:
        shutil.copy(source, target / source.name)
    return target


@pytest.fixture(scope="session")
def hive_env(
    database_url: str, redis_db: tuple[redis.Redis, int], pipelines_dir: Path
) -> dict[str, str]:
    """Environment for this session's hive processes and its in-process client."""
    _, index = redis_db
    base = services.redis_base_url()
    env = {
        "HIVE_DATABASE_URL": database_url,
        "HIVE_BROKER_URL": f"{base}/{index}",
        "HIVE_RESULT_BACKEND": "",
        "HIVE_PIPELINES_DIR": str(pipelines_dir),
        "HIVE_LOG_LEVEL": "INFO",
        # Several workers run at once: only the metrics tests serve /metrics, on free ports.
        "HIVE_METRICS_PORT": "0",
    }
    # In-process clients read the same settings (pytest's own process is a producer too).
    os.environ.update(env)
    from hive.db.engine import dispose_engine
    from hive.settings import get_settings

    get_settings.cache_clear()
    dispose_engine()
    return env


@pytest.fixture
def clean_state(hive_env: dict[str, str], redis_db: tuple[redis.Redis, int]) -> Iterator[None]:
    """Empty tables and queues before each test that runs workers."""
    from tests.support import db  # imports hive.db once hive_env has set the environment

    client, _ = redis_db
    db.empty_farm(client)
    yield


@pytest.fixture
def start_worker(
    hive_env: dict[str, str], tmp_path: Path, clean_state: None
) -> Iterator[Callable[..., HiveProcess]]:
    """Start `hive worker` processes; every one is stopped by PID at the end of the test."""
    started: list[HiveProcess] = []

    def start(
        *args: str, extra_env: dict[str, str] | None = None, name: str | None = None
    ) -> HiveProcess:
        env = {**os.environ, **hive_env, **(extra_env or {})}
        node = name or f"w{len(started)}"
        proc = HiveProcess(
            ["worker", "--hostname", f"{node}@test", *args], env, tmp_path / f"{node}.log"
        )
        started.append(proc)
        proc.wait_for_log("ready.", timeout_s=60)
        return proc

    yield start
    for proc in started:
        proc.discard()


@pytest.fixture
def start_beat(
    hive_env: dict[str, str], tmp_path: Path, clean_state: None
) -> Iterator[Callable[..., HiveProcess]]:
    """Start `hive beat` processes (each with its own schedule file), stopped by PID."""
    started: list[HiveProcess] = []

    def start(extra_env: dict[str, str] | None = None) -> HiveProcess:
        env = {**os.environ, **hive_env, **(extra_env or {})}
        name = f"beat{len(started)}"
        proc = HiveProcess(
            ["beat", "--schedule", str(tmp_path / f"{name}.schedule")],
            env,
            tmp_path / f"{name}.log",
        )
        started.append(proc)
        proc.wait_for_log("beat: Starting", timeout_s=60)
        return proc

    yield start
    for proc in started:
        proc.discard()
