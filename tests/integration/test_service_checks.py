"""The registry's writes against real PostgreSQL: the checks' compare-and-set, cleanup,
heartbeats, racing registrations; each change an event."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hive.db import service_checks
from hive.db import services as registry
from hive.db.retrying import in_transaction
from hive.statuses import ServiceStatus
from tests.support import db


def _add(instance_id: str, **fields: object) -> None:
    new = registry.NewInstance(
        instance_id=instance_id, service="svc", tenant=None, url="http://h/",
        health_url=fields.get("health_url"),  # type: ignore[arg-type]
        ttl_s=fields.get("ttl_s"),  # type: ignore[arg-type]
        deregister_after_s=fields.get("deregister_after_s"),  # type: ignore[arg-type]
        meta={},
    )  # fmt: skip
    in_transaction(lambda conn: registry.register(conn, new))


def test_a_probe_result_is_dropped_when_the_instance_changed_since_it_was_read(
    clean_state: None,
) -> None:
    _add("a", health_url="http://h/health")
    (target,) = in_transaction(service_checks.probe_targets)
    db.execute("UPDATE service_instances SET status = 'critical', failures = 3")

    applied = in_transaction(
        lambda conn: service_checks.record_check(
            conn, "a", expected_status=target.status, expected_failures=target.failures,
            status=ServiceStatus.PASSING, failures=0, output="HTTP 200",
        )
    )  # fmt: skip

    assert applied is False
    assert db.scalar("SELECT status FROM service_instances") == "critical"
    assert db.scalar("SELECT count(*) FROM events WHERE kind = 'service_status'") == 0


def test_a_critical_instance_keeps_its_critical_since_and_passing_clears_it(
    clean_state: None,
) -> None:
    _add("a", health_url="http://h/health")

    def check(expected: str, failures: int, status: ServiceStatus) -> None:
        in_transaction(
            lambda conn: service_checks.record_check(
                conn, "a", expected_status=expected, expected_failures=failures,
                status=status, failures=failures + 1, output="HTTP 500",
            )
        )  # fmt: skip

    check("passing", 0, ServiceStatus.CRITICAL)
    since = db.scalar("SELECT critical_since FROM service_instances")
    check("critical", 1, ServiceStatus.CRITICAL)
    assert db.scalar("SELECT critical_since FROM service_instances") == since
    check("critical", 2, ServiceStatus.PASSING)
    assert db.scalar("SELECT critical_since FROM service_instances") is None
    assert db.scalar("SELECT count(*) FROM events WHERE kind = 'service_status'") == 2


def test_cleanup_removes_only_instances_critical_longer_than_their_deregister_after(
    clean_state: None,
) -> None:
    for name, after in (("old", 60.0), ("recent", 3600.0), ("forever", None), ("fine", 1.0)):
        _add(name, deregister_after_s=after)
    db.execute(
        "UPDATE service_instances SET status = 'critical',"
        " critical_since = now() - interval '10 minutes' WHERE id <> 'fine'"
    )

    removed = in_transaction(service_checks.remove_long_critical)

    assert removed == ["old"]
    assert {r.id for r in db.rows("SELECT id FROM service_instances")} == {
        "recent", "forever", "fine",
    }  # fmt: skip
    (event,) = db.rows("SELECT detail FROM events WHERE kind = 'service_deregistered'")
    assert event.detail["instance_id"] == "old" and event.detail["critical_since"]


def test_a_heartbeat_does_not_revive_an_instance_its_probes_hold_critical(
    clean_state: None,
) -> None:
    _add("probed", health_url="http://h/health", ttl_s=10.0)
    _add("ttl-only", ttl_s=10.0)
    db.execute("UPDATE service_instances SET status = 'critical', critical_since = now()")
    db.execute("UPDATE service_instances SET failures = 3 WHERE id = 'probed'")

    for instance in ("probed", "ttl-only"):
        in_transaction(
            lambda conn, i=instance: registry.heartbeat(conn, i, tenant=None, failures_threshold=3)
        )

    statuses = dict(db.rows("SELECT id, status FROM service_instances"))
    assert statuses == {"probed": "critical", "ttl-only": "passing"}


def test_registrations_of_one_id_racing_each_other_leave_one_instance(clean_state: None) -> None:
    from hive import Client

    services = Client().services

    def register(n: int) -> str:
        return services.register("svc", f"http://h{n}/", instance_id="same")

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(register, range(16)))

    assert set(ids) == {"same"}
    assert db.scalar("SELECT count(*) FROM service_instances") == 1
    kinds = [r.detail.get("again", False) for r in db.rows(
        "SELECT detail FROM events WHERE kind = 'service_registered'"
    )]  # fmt: skip
    assert kinds.count(False) == 1 and len(kinds) == 16
