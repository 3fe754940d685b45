"""`hive worker` refuses settings under which Redis would hand a running step to a second worker."""

from __future__ import annotations

import os
import subprocess
import sys


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
