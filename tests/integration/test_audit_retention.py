"""Retention of the audit trail: beat's purge deletes the records older than
``HIVE_AUDIT_RETENTION_DAYS``, a batch per transaction, and keeps the rest. Real PostgreSQL
and Redis (the purge's lock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hive import service
from hive.service import Action, Caller, Outcome, Role
from hive.settings import get_settings
from tests.support import db


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change settings through the environment; the session's come back afterwards."""
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def _record(target: str, age_days: float) -> None:
    service.record_audit(
        get_settings(), Caller("acme", Role.PRODUCER), key_id="0123456789abcdef",
        action=Action.RUN_SUBMIT, target=target, outcome=Outcome.OK, client="127.0.0.1",
    )  # fmt: skip
    db.execute(
        "UPDATE audit SET at = now() - make_interval(secs => :s) WHERE target = :t",
        s=age_days * 86400, t=target,
    )  # fmt: skip


def _targets() -> list[str]:
    return sorted(r.target for r in db.rows("SELECT target FROM audit"))


def test_the_purge_deletes_audit_records_past_their_retention_a_batch_at_a_time(
    clean_state: None, settings_env: pytest.MonkeyPatch
) -> None:
    from hive.beat import tasks

    ages = {"old-1": 400, "old-2": 200, "old-3": 120, "old-4": 95, "old-5": 90.01,
            "kept-1": 89.9, "kept-2": 30, "kept-3": 0}  # fmt: skip
    for target, age in ages.items():
        _record(target, age)
    batches: list[int] = []
    purge_batch = tasks.key_store.purge_audit_batch

    def counted(*args: Any) -> int:
        batches.append(purge_batch(*args))
        return batches[-1]

    settings_env.setattr(tasks, "AUDIT_PURGE_BATCH", 2)
    settings_env.setattr(tasks.key_store, "purge_audit_batch", counted)

    purged = service.purge(get_settings(), service.OPERATOR)

    assert get_settings().retention.audit_days == 90  # the default
    assert purged is not None and purged["audit"] == 5
    assert batches == [2, 2, 1]
    assert _targets() == ["kept-1", "kept-2", "kept-3"]
    assert service.purge(get_settings(), service.OPERATOR)["audit"] == 0  # type: ignore[index]

    settings_env.setenv("HIVE_AUDIT_RETENTION_DAYS", "10")
    get_settings.cache_clear()
    assert service.purge(get_settings(), service.OPERATOR)["audit"] == 2  # type: ignore[index]
    assert _targets() == ["kept-3"]
