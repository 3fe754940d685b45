"""Retention of runs and events: beat's purge deletes what is older than
``HIVE_RETENTION_DAYS`` and never what belongs to a run still going. Real PostgreSQL and
Redis (the purge's lock)."""

from __future__ import annotations

import pytest

from tests.support import db

pytestmark = pytest.mark.timeout(60)


def test_the_purge_keeps_the_events_of_a_run_still_awaiting_approval(clean_state: None) -> None:
    from hive import Client
    from hive.beat.tasks import purge_now

    # Held at submit: no worker needed, and the run stays unfinished.
    run = Client().submit("approval-first", {"text": "hello"})
    db.execute("INSERT INTO events (kind, detail) VALUES ('maintenance', '{\"task\": \"old\"}')")
    db.execute("UPDATE events SET created_at = now() - interval '40 days'")
    kinds = db.rows("SELECT kind FROM events WHERE run_id = :id", id=str(run.id))
    assert "approval_requested" in {r.kind for r in kinds}

    result = purge_now()

    assert result is not None and result["events"] == 1, "the run-less old event only"
    kept = db.rows("SELECT kind FROM events WHERE run_id = :id", id=str(run.id))
    assert sorted(r.kind for r in kept) == sorted(r.kind for r in kinds)
    assert Client().approvals.get(run.id, "first").status == "pending"
