"""The layers hold: imports point down only, and a producer loads no more than it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).with_name("lint-imports")

    result = subprocess.run(
        [str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_a_producer_imports_neither_beat_nor_the_cli_and_its_app_has_no_beat_schedule() -> None:
    script = (
        "import sys\n"
        "import hive.client\n"
        "from hive.tasks.app import app\n"
        "top = {'.'.join(m.split('.')[:2]) for m in sys.modules}\n"
        "loaded = top & {'hive.beat', 'hive.cli'}\n"
        "assert not loaded, loaded\n"
        "assert not app.conf.beat_schedule, app.conf.beat_schedule\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
