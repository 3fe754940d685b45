"""Submitting runs from a separate producer process, with an environment of the test's choice."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_SCRIPT = """
import json, sys
from hive import Client
pipeline, inputs, options = json.loads(sys.stdin.read())
client = Client()
print(json.dumps([str(client.submit(pipeline, data, **options).id) for data in inputs]))
"""


def submit(env: dict[str, str], pipeline: str, inputs: list[Any], **options: Any) -> list[str]:
    """Submit one run per input from a child process; returns their ids."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        input=json.dumps([pipeline, inputs, options]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"producer failed:\n{done.stderr[-3000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))
