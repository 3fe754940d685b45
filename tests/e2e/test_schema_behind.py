"""A database whose schema is behind the installed Hive (an upgrade of the code without
`hive db upgrade`): every command says to run `hive db upgrade`, in one line, and a worker
waits for it instead of taking steps it could not record."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import services
from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess

# 0016 added runs.budget_usd, which every read and write of a run names.
BEHIND = "0015"


@pytest.fixture
def behind_env(hive_env: dict[str, str]) -> Iterator[dict[str, str]]:
    from alembic import command

    from hive.db.migrate import alembic_config

    name, url = services.create_database()
    try:
        command.upgrade(alembic_config(url), BEHIND)
        yield {**os.environ, **hive_env, "HIVE_DATABASE_URL": url}
    finally:
        services.drop_database(name)


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list"],
        ["runs", "show", "00000000-0000-4000-8000-000000000000"],
        ["submit", "echo-one", "--input", '{"text": "x"}'],
    ],
    ids=lambda args: " ".join(args),
)
@pytest.mark.timeout(120)
def test_a_command_on_a_schema_behind_the_code_says_to_run_db_upgrade(
    args: list[str], behind_env: dict[str, str]
) -> None:
    result = run_hive(*args, env=behind_env)

    assert result.returncode == 1, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("error: HIVE_DATABASE_URL: "), describe(result)
    assert "run `hive db upgrade`" in lines[0], describe(result)


@pytest.mark.timeout(120)
def test_a_worker_on_a_schema_behind_the_code_waits_for_db_upgrade(
    behind_env: dict[str, str], tmp_path: Path
) -> None:
    proc = HiveProcess(["worker", "--concurrency", "1"], behind_env, tmp_path / "log")
    try:
        proc.wait_for_log("retrying in", timeout_s=60)
        assert proc.proc.poll() is None
    finally:
        proc.stop()

    log = proc.log()
    assert f"is at schema revision {BEHIND}" in log
    assert "run `hive db upgrade`" in log
    assert " ready." not in log, "a worker took steps on a schema it cannot record them in"
