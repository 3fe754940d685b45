"""`hive worker` refuses settings under which Redis would hand a running step to a second
worker, and a limits file it would not apply, naming HIVE_LIMITS_FILE."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`hive worker` under ``env``, which must stop it before it starts consuming."""
    return subprocess.run(
        [sys.executable, "-m", "hive.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_worker_refuses_a_visibility_timeout_shorter_than_a_step_timeout() -> None:
    env = {**os.environ, "HIVE_VISIBILITY_TIMEOUT_S": "100"}
    done = _worker(env)
    assert done.returncode == 1
    assert done.stderr.startswith("error: HIVE_VISIBILITY_TIMEOUT_S")
    assert "timeout" in done.stderr
    assert "Traceback" not in done.stderr


_SLOW = """\
name: slow
version: 1
input_schema: {type: object, properties: {text: {type: string}}}
steps:
  - {id: wait, agent: echo, input: {text: $input.text}, options: {timeout: 5000}}
"""


def test_a_broken_pipeline_file_leaves_the_others_checked_against_the_visibility_timeout(
    tmp_path: Path,
) -> None:
    # One broken file took every pipeline out of the check: a step longer than the
    # visibility timeout went unnoticed, and Redis would hand it to a second worker.
    (tmp_path / "slow.yaml").write_text(_SLOW)
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    env = {
        **os.environ,
        "HIVE_PIPELINES_DIR": str(tmp_path),
        "HIVE_VISIBILITY_TIMEOUT_S": "5000",  # above every agent's own
        "HIVE_BROKER_URL": "redis://127.0.0.1:1/0",  # never reached: refused before
    }

    done = _worker(env)

    assert done.returncode == 1, done.stderr[-2000:]
    assert f"{tmp_path / 'slow.yaml'}: step 'wait' has timeout 5000s" in done.stderr
    assert f"{tmp_path / 'broken.yaml'}: " in done.stderr  # warned of, not checked
    assert "Traceback" not in done.stderr


def test_worker_refuses_an_invalid_limits_file_naming_every_problem(tmp_path: Path) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  service:partner: {rate: fast}\nbreakers:\n  nope: {}\n")
    env = {**os.environ, "HIVE_LIMITS_FILE": str(limits)}
    done = _worker(env)
    assert done.returncode == 1
    assert f"{limits}: limits.service:partner.rate: 'fast' is not a rate" in done.stderr
    assert f"{limits}: breakers.nope: a key must be" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_refuses_a_limits_file_that_is_not_text_in_one_line(tmp_path: Path) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_bytes(b"limits:\n\xff\xfe\x00")
    env = {**os.environ, "HIVE_LIMITS_FILE": str(limits)}
    done = _worker(env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: HIVE_LIMITS_FILE: cannot read {limits}: not UTF-8 text (byte 8)"
    ]


def test_worker_names_hive_limits_file_with_the_problems_of_its_content(tmp_path: Path) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits: [\n")
    env = {**os.environ, "HIVE_LIMITS_FILE": str(limits)}
    done = _worker(env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: HIVE_LIMITS_FILE: {limits} (line 2): not valid YAML")
