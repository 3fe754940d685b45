"""Every benchmark module imports: ``python -m bench.throughput`` is how issue 8's and
issue 12's figures are taken, and a name moved inside ``hive`` (as ``PRIORITIES`` once was,
from ``hive.tasks.app`` to ``hive.keys``) must not break the harness unseen."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = sorted(f"bench.{p.stem}" for p in BENCH.glob("*.py") if p.stem != "__init__")


def test_the_benchmark_modules_are_found() -> None:
    assert {"bench.throughput", "bench.api", "bench.step_cost"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_a_benchmark_module_imports(module: str) -> None:
    importlib.import_module(module)
