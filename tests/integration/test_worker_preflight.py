"""`hive worker` refuses settings under which Redis would hand a running step to a second worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_worker_refuses_a_visibility_timeout_shorter_than_a_step_timeout() -> None:
    env = {**os.environ, "HIVE_VISIBILITY_TIMEOUT_S": "100"}
    done = subprocess.run(
        [sys.executable, "-m", "hive.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: HIVE_VISIBILITY_TIMEOUT_S")
    assert "timeout" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_refuses_an_invalid_limits_file_naming_every_problem(tmp_path: Path) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  service:partner: {rate: fast}\nbreakers:\n  nope: {}\n")
    env = {**os.environ, "HIVE_LIMITS_FILE": str(limits)}
    done = subprocess.run(
        [sys.executable, "-m", "hive.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"{limits}: limits.service:partner.rate: 'fast' is not a rate" in done.stderr
    assert f"{limits}: breakers.nope: a key must be" in done.stderr
    assert "Traceback" not in done.stderr
