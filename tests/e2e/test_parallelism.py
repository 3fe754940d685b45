"""Parallel branches really run in parallel, and each step starts as soon as its own needs
are met: judged from the start and finish times PostgreSQL recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from hive import Client
from hive.client import StepView
from tests.support.processes import HiveProcess


def _steps(run_id: object) -> dict[str, StepView]:
    return {s.step_id: s for s in Client().get(str(run_id)).steps}


@pytest.mark.timeout(120)
def test_parallel_branches_overlap_in_time_and_the_merge_starts_after_both(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2")

    run = Client().submit("parallel", {"text": "fan out"})
    output = run.wait(timeout=30)

    slept = {branch: out["slept"] for branch, out in output["merged"].items()}
    assert slept.keys() == {"left", "right"}
    assert all(1.0 <= s < 1.5 for s in slept.values()), slept  # the time actually slept
    steps = _steps(run.id)
    assert {s.status for s in steps.values()} == {"succeeded"}
    left, right, join = steps["left"], steps["right"], steps["join"]
    assert left.started_at and left.finished_at and right.started_at and right.finished_at
    assert join.started_at
    overlap = min(left.finished_at, right.finished_at) - max(left.started_at, right.started_at)
    # Each sleeps 1 s; run one after the other they would not overlap at all.
    assert overlap > timedelta(seconds=0.5), (left, right)
    assert join.started_at >= max(left.finished_at, right.finished_at)
    assert left.worker and right.worker


@pytest.mark.timeout(120)
def test_a_step_starts_as_soon_as_its_own_needs_succeeded(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker("--concurrency", "2")

    run = Client().submit("eager", {"text": "hurry"})
    run.wait(timeout=30)

    steps = _steps(run.id)
    assert {s.status for s in steps.values()} == {"succeeded"}
    quick, quick_next, slow = steps["quick"], steps["quick_next"], steps["slow"]
    assert quick.finished_at and quick_next.started_at and slow.finished_at
    assert quick_next.started_at >= quick.finished_at
    # quick_next waits for quick only, not for the 2-second sleep beside it.
    assert quick_next.started_at < slow.finished_at - timedelta(seconds=1), (quick_next, slow)
    assert quick_next.output == {"text": "hurry"}
