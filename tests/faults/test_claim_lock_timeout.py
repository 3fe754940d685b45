"""A claim PostgreSQL gives up on (a DBA's ``lock_timeout`` on Hive's role or database, the
step's row held by a long transaction) puts its message back at once, told as what it is:
not waited out for the claim's outage budget, not logged as an unreachable database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from tests.support import db

pytestmark = pytest.mark.timeout(120)


def test_a_claim_that_times_out_on_a_held_row_puts_its_message_back_and_the_run_ends(
    hive_env, start_worker, success_audit
) -> None:
    # As a DBA would set it for Hive's role: every connection of the worker has it.
    timed_out_url = f"{hive_env['HIVE_DATABASE_URL']}?options=-c%20lock_timeout%3D200ms"
    run = Client().submit("fault-quick", {"text": "x"})  # no worker yet: it waits in Redis
    with get_engine().connect() as holder:
        # A long transaction (a DBA's, a report's) holds the step's row.
        held = holder.execute(
            text("SELECT step_id FROM step_runs WHERE run_id = :r FOR UPDATE"), {"r": run.id}
        ).all()
        assert len(held) == 1
        worker = start_worker("--concurrency", "1", extra_env={"HIVE_DATABASE_URL": timed_out_url})
        worker.wait_for_log("claim cancelled", timeout_s=30)
        holder.rollback()

    # The message itself comes back (after 5 s), not the re-send minutes later.
    assert run.wait(timeout=40) == {"only": {"text": "x"}}
    assert db.duplicate_successes() == 0
    log = worker.log()
    assert "lock_timeout" in log
    assert "unreachable" not in log
