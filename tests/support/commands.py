"""Run `hive` commands and producer scripts as separate processes, the way users do."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import HIVE


def run_hive(
    *args: str, env: dict[str, str], timeout_s: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run ``hive <args>`` to completion and capture its output."""
    return subprocess.run(
        [*HIVE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def run_python(
    source: str, *args: str, env: dict[str, str], timeout_s: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c <source> <args>`` in a fresh interpreter and capture its output."""
    return subprocess.run(
        [sys.executable, "-c", source, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code and both streams, for assertion messages."""
    return (
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
