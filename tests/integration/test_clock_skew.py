"""Ages the operator reads (beat's health check, `hive status`) are measured by
PostgreSQL's clock, as the timestamps they are taken from: a host whose clock is off by
minutes still reads a maintenance run of a moment ago as a moment ago. Real PostgreSQL;
the local clock is moved for the call."""

from __future__ import annotations

import time

import pytest

from tests.support import db

pytestmark = pytest.mark.timeout(60)

SKEW_S = 120.0


@pytest.fixture
def clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's clock runs SKEW_S ahead of the database server's."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + SKEW_S)


def _maintenance_just_ran() -> None:
    db.execute(
        "INSERT INTO events (kind, detail) VALUES ('maintenance', '{\"task\": \"recover\"}')"
    )


def test_beat_health_reads_the_age_of_maintenance_by_the_databases_clock(
    clean_state: None, clock_ahead: None
) -> None:
    from hive import service
    from hive.settings import get_settings

    _maintenance_just_ran()

    health = service.beat_health(get_settings(), service.OPERATOR, within_s=60)

    assert health.healthy, health.detail


def test_status_reads_the_age_of_maintenance_by_the_databases_clock(
    clean_state: None, clock_ahead: None
) -> None:
    from hive import service
    from hive.settings import get_settings

    _maintenance_just_ran()

    status = service.farm_status(get_settings(), service.OPERATOR)

    [recover] = [m for m in status.maintenance if m.task == "recover"]
    assert recover.last_success_age_s is not None and recover.last_success_age_s < 60


def test_workers_list_reads_the_age_of_heartbeats_by_the_databases_clock(
    clean_state: None, clock_ahead: None
) -> None:
    """`hive workers list` printed `now - heartbeat_at` by this host's clock: a host two
    minutes ahead read a worker that beat 30 s ago as 150 s ago. The view carries the age
    by PostgreSQL's clock, which the table prints."""
    from hive import service
    from hive.settings import get_settings

    db.execute(
        "INSERT INTO workers (name, pid, queues, concurrency, pool, hive_version,"
        " celery_version, started_at, heartbeat_at, state)"
        " VALUES ('w1', 1, '{hive.default}', 1, 'prefork', '0', '5', now(),"
        " now() - interval '30 seconds', 'online')"
    )

    [worker] = service.list_workers(get_settings(), service.OPERATOR)

    assert 29 <= worker.heartbeat_age_s < 60
    assert worker.to_json()["heartbeat_age_s"] == pytest.approx(worker.heartbeat_age_s, abs=1e-3)
