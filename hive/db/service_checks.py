"""The registry's checks, as beat's ``health_sweep`` and ``cleanup_services`` write them.

Each status change is a compare-and-set on the status (and failure count) the sweep read
before it probed: a heartbeat or re-registration in between wins, and the next sweep
probes again. Each change is recorded as a ``service_status`` event, each cleanup as a
``service_deregistered`` event, in the transaction that made it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, text, update

from hive.db.models import service_instances as instances
from hive.db.services import deregistered, status_changed
from hive.statuses import ServiceStatus

# The status literals are ServiceStatus values written out (a test holds SQL to the enums).
_EXPIRE_TTLS = text(
    """
    WITH expired AS (
        SELECT id, status FROM service_instances
        WHERE ttl_s IS NOT NULL AND status <> 'critical'
          AND last_heartbeat_at < now() - ttl_s * interval '1 second'
        FOR UPDATE SKIP LOCKED
    )
    UPDATE service_instances s SET status = 'critical', critical_since = now()
    FROM expired e WHERE s.id = e.id
    RETURNING s.id, s.service, s.tenant, e.status AS old_status, s.ttl_s
    """
)


def expire_ttls(conn: Connection) -> int:
    """Make critical every instance whose TTL passed without a heartbeat; how many."""
    rows = list(conn.execute(_EXPIRE_TTLS))
    for row in rows:
        status_changed(conn, row, row.old_status, ServiceStatus.CRITICAL, "ttl", ttl_s=row.ttl_s)
    return len(rows)


def probe_targets(conn: Connection) -> list[Any]:
    """Every instance with a health URL, the least recently checked first (a sweep short of
    time leaves the last ones for the next): what a probe's result is applied to.
    ``ttl_expired`` says whether its TTL check fails meanwhile (then it stays critical
    whatever the probe)."""
    ttl_expired = instances.c.ttl_s.is_not(None) & (
        instances.c.last_heartbeat_at < func.now() - instances.c.ttl_s * text("interval '1 second'")
    )
    query = select(
        instances.c.id,
        instances.c.tenant,
        instances.c.health_url,
        instances.c.status,
        instances.c.failures,
        ttl_expired.label("ttl_expired"),
    ).where(instances.c.health_url.is_not(None))
    order = (instances.c.last_check_at.asc().nulls_first(), instances.c.id)
    return list(conn.execute(query.order_by(*order)))


def record_check(
    conn: Connection,
    instance_id: str,
    *,
    expected_status: str,
    expected_failures: int,
    status: ServiceStatus,
    failures: int,
    output: str,
) -> bool:
    """Store a probe's result if the instance is still as the sweep read it; False if not
    (changed meanwhile, or gone)."""
    critical = status == ServiceStatus.CRITICAL
    row = conn.execute(
        update(instances)
        .where(
            instances.c.id == instance_id,
            instances.c.status == expected_status,
            instances.c.failures == expected_failures,
        )
        .values(
            status=status,
            failures=failures,
            last_check_at=func.now(),
            last_check_output=output,
            critical_since=(
                func.coalesce(instances.c.critical_since, func.now()) if critical else None
            ),
        )
        .returning(instances.c.id, instances.c.service, instances.c.tenant)
    ).first()
    if row is None:
        return False
    if status != expected_status:
        status_changed(conn, row, expected_status, status, "probe", output=output)
    return True


_REMOVE_LONG_CRITICAL = text(
    """
    DELETE FROM service_instances
    WHERE status = 'critical' AND deregister_after_s IS NOT NULL
      AND critical_since < now() - deregister_after_s * interval '1 second'
    RETURNING *
    """
)


def remove_long_critical(conn: Connection) -> list[str]:
    """Deregister every instance critical for longer than its ``deregister_after_s``; their
    ids."""
    rows = list(conn.execute(_REMOVE_LONG_CRITICAL))
    for row in rows:
        deregistered(conn, row, "critical for longer than deregister_after_s")
    return [row.id for row in rows]
