"""Retention of runs and events: beat's purge deletes what is older than
``HIVE_RETENTION_DAYS`` and never what belongs to a run still going. Real PostgreSQL and
Redis (the purge's lock)."""

from __future__ import annotations

from typing import Any

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


def test_the_purge_deletes_old_runs_and_events_a_batch_per_transaction(
    clean_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hive import Client
    from hive.beat import tasks

    client = Client()
    runs = [client.submit("echo-one", {"text": str(i)}) for i in range(5)]
    ids = [str(r.id) for r in runs]
    # Four finished long ago, one still going; an event of every run, old.
    db.execute(
        "UPDATE runs SET status = 'succeeded', created_at = now() - interval '41 days',"
        " finished_at = now() - interval '40 days' WHERE id = ANY(CAST(:ids AS uuid[]))",
        ids=ids[:4],
    )
    db.execute("INSERT INTO events (kind) SELECT 'old' FROM generate_series(1, 5)")
    db.execute("UPDATE events SET created_at = now() - interval '40 days'")
    sizes: dict[str, list[int]] = {"runs": [], "events": []}

    def counted(name: str) -> Any:
        delete = getattr(tasks.sweeps, f"purge_{name}_batch")

        def batch(*args: Any) -> int:
            # Each batch its own transaction: nothing else is pending in this one.
            sizes[name].append(delete(*args))
            return sizes[name][-1]

        return batch

    monkeypatch.setattr(tasks, "RUN_PURGE_BATCH", 3)
    monkeypatch.setattr(tasks, "EVENT_PURGE_BATCH", 2)
    for name in sizes:
        monkeypatch.setattr(tasks.sweeps, f"purge_{name}_batch", counted(name))

    result = tasks.purge_now()

    assert result is not None and (result["runs"], result["events"]) == (4, 5)
    assert sizes == {"runs": [3, 1], "events": [2, 2, 1]}
    assert [str(r.id) for r in db.rows("SELECT id FROM runs")] == [ids[4]]
    kinds = {r.kind for r in db.rows("SELECT kind FROM events")}
    assert "old" not in kinds, "the run-less old events are gone"


def test_what_the_purge_deletes_is_counted_in_hive_purged_total(clean_state: None) -> None:
    from prometheus_client import generate_latest

    from hive import Client
    from hive.beat.tasks import purge_now
    from hive.exporter import farm_registry
    from hive.settings import get_settings

    def served() -> dict[str, float]:
        text = generate_latest(farm_registry(get_settings())).decode()
        return {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hive_purged_total{")
        }

    # Before any purge: every kind, at 0 (rate() needs the series before the first one).
    assert served() == dict.fromkeys(("runs", "events", "workers", "budget_days", "audit"), 0.0)
    runs = [Client().submit("echo-one", {"text": str(i)}) for i in range(3)]
    db.execute(
        "UPDATE runs SET status = 'succeeded', created_at = now() - interval '41 days',"
        " finished_at = now() - interval '40 days' WHERE id = ANY(CAST(:ids AS uuid[]))",
        ids=[str(r.id) for r in runs[:2]],
    )
    db.execute("INSERT INTO events (kind) SELECT 'old' FROM generate_series(1, 4)")
    db.execute("UPDATE events SET created_at = now() - interval '40 days' WHERE kind = 'old'")

    first = purge_now()
    db.execute("INSERT INTO events (kind) VALUES ('old')")
    db.execute("UPDATE events SET created_at = now() - interval '40 days' WHERE kind = 'old'")
    second = purge_now()

    assert first is not None and (first["runs"], first["events"]) == (2, 4)
    assert second is not None and (second["runs"], second["events"]) == (0, 1)
    # A counter: the second purge adds to the first.
    assert served() == {"runs": 2.0, "events": 5.0, "workers": 0.0, "budget_days": 0.0,
                        "audit": 0.0}  # fmt: skip
