"""The `hive` command reports configuration and connection problems in one line naming the
setting at fault, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.commands import describe, run_hive

UNREACHABLE_DB = "postgresql+psycopg2://postgres@127.0.0.1:1/x"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("error: "), describe(result)
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HIVE_LEASE_GRACE_S", "abc"),
        ("HIVE_LEASE_GRACE_S", "-1"),
        ("HIVE_DATABASE_URL", "mysql://root@localhost/hive"),
        ("HIVE_BROKER_URL", "amqp://guest@localhost//"),
        ("HIVE_LOG_FORMAT", "xml"),
        ("HIVE_FLOWER_BASIC_AUTH", "no-colon"),
    ],
)
@pytest.mark.timeout(60)
def test_cli_with_a_malformed_setting_prints_one_line_naming_the_variable(
    variable: str, value: str, hive_env: dict[str, str]
) -> None:
    env = {**_base_env(hive_env), variable: value}

    result = run_hive("runs", "list", env=env)

    assert result.returncode == 1, describe(result)
    assert variable in _one_error_line(result)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [["runs", "list"], ["runs", "show", "00000000-0000-0000-0000-000000000000"]],
    ids=["runs-list", "runs-show"],
)
@pytest.mark.timeout(60)
def test_cli_with_an_unreachable_database_prints_one_line_naming_hive_database_url(
    args: list[str], hive_env: dict[str, str]
) -> None:
    env = {**_base_env(hive_env), "HIVE_DATABASE_URL": UNREACHABLE_DB}

    result = run_hive(*args, env=env)

    assert result.returncode == 1, describe(result)
    assert "HIVE_DATABASE_URL" in _one_error_line(result)


@pytest.mark.timeout(60)
def test_cli_submit_with_an_unreachable_database_prints_one_line_naming_hive_database_url(
    hive_env: dict[str, str],
) -> None:
    env = {**_base_env(hive_env), "HIVE_DATABASE_URL": UNREACHABLE_DB}

    result = run_hive("submit", "doc-triage", "--input", '{"text": "x"}', env=env)

    assert result.returncode == 1, describe(result)
    assert "HIVE_DATABASE_URL" in _one_error_line(result)
    assert result.stdout == ""


@pytest.mark.timeout(60)
def test_cli_runs_show_of_an_unknown_run_prints_one_line_and_exits_1(
    hive_env: dict[str, str],
) -> None:
    result = run_hive("runs", "show", "not-a-run-id", env=_base_env(hive_env))

    assert result.returncode == 1, describe(result)
    assert "not-a-run-id" in _one_error_line(result)


@pytest.mark.timeout(60)
def test_flower_refuses_to_start_without_basic_auth(hive_env: dict[str, str]) -> None:
    env = _base_env(hive_env)
    env.pop("HIVE_FLOWER_BASIC_AUTH", None)
    env.pop("FLOWER_BASIC_AUTH", None)

    result = run_hive("flower", "--port", "1", env=env, timeout_s=30)

    assert result.returncode != 0, describe(result)
    line = _one_error_line(result)
    assert "HIVE_FLOWER_BASIC_AUTH" in line
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [[], ["worker"], ["beat"], ["flower"], ["submit"], ["runs", "show"], ["db", "upgrade"]],
    ids=lambda args: " ".join(args) or "hive",
)
@pytest.mark.timeout(60)
def test_hive_commands_print_their_help_in_a_real_process(
    args: list[str], hive_env: dict[str, str]
) -> None:
    result = run_hive(*args, "--help", env=_base_env(hive_env))

    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith("Usage: "), describe(result)
    assert result.stderr == ""


@pytest.mark.timeout(60)
def test_the_installed_hive_script_runs_the_same_command(hive_env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("hive")
    assert script.exists(), f"no console script at {script}"

    result = subprocess.run(
        [str(script), "runs", "list", "--help"],
        env=_base_env(hive_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith("Usage: hive runs list"), describe(result)


def _base_env(hive_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **hive_env}
