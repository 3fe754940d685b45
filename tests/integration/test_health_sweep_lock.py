"""A health sweep of more hanging health URLs than fit in its lock's time stops starting
probes in time to end within the lock, so a second sweep never runs beside it; the
instances it left go first in the next sweep. Real PostgreSQL, Redis and HTTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from hive.db import services as registry
from hive.db.retrying import in_transaction
from hive.settings import get_settings
from tests.support import db
from tests.support.http_stub import HealthStub
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def hanging(clean_state: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[HealthStub]:
    """A probe timeout of 1 s, one probe at a time, and a server that never answers."""
    monkeypatch.setenv("HIVE_HEALTH_TIMEOUT_S", "1")
    monkeypatch.setenv("HIVE_HEALTH_MAX_PROBES", "1")
    get_settings.cache_clear()
    server = HealthStub({"hang": "hang"})
    yield server
    server.close()
    monkeypatch.undo()
    get_settings.cache_clear()


def _register(count: int, url: str) -> None:
    for i in range(count):
        new = registry.NewInstance(
            instance_id=f"slow-{i:03d}", service="svc", tenant=None, url="http://h/",
            health_url=url, ttl_s=None, deregister_after_s=None, meta={},
        )  # fmt: skip
        in_transaction(lambda conn, new=new: registry.register(conn, new))


def test_a_health_sweep_too_long_for_its_lock_ends_before_the_lock_does(
    hanging: HealthStub,
) -> None:
    from hive import keys
    from hive.beat.lock import broker_redis
    from hive.beat.tasks import health_now

    # 70 probes of 1 s, one at a time: 70 s, past the lock's 62 s (2 timeouts + 60 s).
    _register(70, hanging.url("hang"))
    lock_key = keys.maintenance_lock(get_settings().broker.key_prefix, "health")
    client = broker_redis()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(1) as pool:
            sweeping = pool.submit(health_now)
            wait_until(lambda: client.exists(lock_key), 30, "the sweep to take its lock")
            while not sweeping.done():
                # While the sweep runs its lock is held: no other sweep could start.
                held = client.exists(lock_key) or sweeping.done()
                assert held, f"the health lock was free {time.monotonic() - started:.0f}s in"
                time.sleep(0.5)
            result = sweeping.result()
    finally:
        client.close()

    assert result is not None
    services = result["services"]
    assert services["unprobed"] > 0 and services["probed"] + services["unprobed"] == 70
    assert time.monotonic() - started < 62
    # The next sweep starts with those the first one left.
    left = {r.id for r in db.rows("SELECT id FROM service_instances WHERE last_check_at IS NULL")}
    assert len(left) == services["unprobed"]
    from hive.beat.health import sweep_services

    again = sweep_services(probe_until=time.monotonic() + 3.5)
    assert 0 < again.probed < len(left)
    checked = db.rows("SELECT id FROM service_instances WHERE last_check_at IS NOT NULL")
    assert len(left - {r.id for r in checked}) == len(left) - again.probed
