"""Priorities: a critical run submitted behind a backlog of low-priority runs is served first."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from tests.support.processes import HiveProcess

BACKLOG = 200


def _start_order(run_id: str) -> int:
    """How many steps started before the given run's step."""
    with get_engine().connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM step_runs"
                    " WHERE started_at < (SELECT started_at FROM step_runs WHERE run_id = :run_id)"
                ),
                {"run_id": run_id},
            ).scalar_one()
        )


@pytest.mark.parametrize("pool", ["prefork", "solo"])
@pytest.mark.timeout(180)
def test_a_critical_run_overtakes_a_backlog_of_low_priority_runs(
    pool: str, start_worker: Callable[..., HiveProcess]
) -> None:
    client = Client()
    for i in range(BACKLOG):
        client.submit("echo-one", {"text": f"low {i}"}, priority="low")
    critical = client.submit("echo-one", {"text": "urgent"}, priority="critical")

    start_worker("--pool", pool, "--concurrency", "1")
    assert critical.wait(timeout=60) == {"echo": {"text": "urgent"}}

    position = _start_order(str(critical.id))
    # Served in arrival order, the critical run would start after all 200 others.
    assert position < 10, f"the critical run started after {position} other steps"
