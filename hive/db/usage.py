"""What steps used (``ctx.report_usage``: tokens, calls, cost), and its sums per run and
per tenant.

A step's row holds its successful attempt's usage, each ``step_attempts`` row its failed
attempt's (migration 0011), or a deferred or escalated one's that used something, written
in the outcome's own statement: a run's usage is the sum of both, with no double count (a
replay resets only failed and skipped steps, whose rows hold none).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID


def stored(usage: Mapping[str, float] | None) -> dict[str, float | int] | None:
    """``usage`` as it is stored: finite numbers only (whole ones as integers), None when
    nothing is left. An agent's report cannot fail the write of its outcome."""
    if not usage:
        return None
    kept: dict[str, float | int] = {}
    for key, value in usage.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            kept[str(key)] = int(value) if float(value).is_integer() else float(value)
    return kept or None


def add(total: dict[str, float | int], usage: Mapping[str, Any]) -> None:
    """Add ``usage``'s numbers into ``total``."""
    for key, value in usage.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


_RUN_USAGE = text(
    """
    SELECT step_id, usage FROM step_runs WHERE run_id = :run_id AND usage IS NOT NULL
    UNION ALL
    SELECT step_id, usage FROM step_attempts WHERE run_id = :run_id AND usage IS NOT NULL
    """
)


def run_usage(conn: Connection, run_id: uuid.UUID) -> dict[str, dict[str, float | int]]:
    """Step id → what the step used, its successful and failed attempts summed; steps that
    reported nothing are left out."""
    steps: dict[str, dict[str, float | int]] = {}
    for row in conn.execute(_RUN_USAGE, {"run_id": run_id}):
        add(steps.setdefault(row.step_id, {}), row.usage)
    return steps


_RUNS_USAGE = text(
    """
    SELECT run_id, usage FROM step_runs WHERE run_id = ANY(:run_ids) AND usage IS NOT NULL
    UNION ALL
    SELECT run_id, usage FROM step_attempts WHERE run_id = ANY(:run_ids) AND usage IS NOT NULL
    """
).bindparams(bindparam("run_ids", type_=ARRAY(UUID(as_uuid=True))))


def runs_usage(
    conn: Connection, run_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, float | int]]:
    """Run id → what its steps used, every attempt summed (for a listing: one statement
    for the page, by primary key and ``ix_step_attempts_step``)."""
    runs: dict[uuid.UUID, dict[str, float | int]] = {}
    if run_ids:
        for row in conn.execute(_RUNS_USAGE, {"run_ids": run_ids}):
            add(runs.setdefault(row.run_id, {}), row.usage)
    return runs


# Runs first (by tenant and creation time: ix_runs_tenant_created), then their steps and
# failed attempts by primary key and index; only the numbers of each usage are summed.
_TENANT_USAGE = text(
    """
    WITH scoped AS (
        SELECT id, tenant FROM runs
         WHERE (CAST(:every_tenant AS boolean) OR tenant = :tenant)
           AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
    ), used AS (
        SELECT s.run_id, s.usage FROM step_runs s JOIN scoped r ON r.id = s.run_id
         WHERE s.usage IS NOT NULL
        UNION ALL
        SELECT a.run_id, a.usage FROM step_attempts a JOIN scoped r ON r.id = a.run_id
         WHERE a.usage IS NOT NULL
    ), per_tenant AS (
        SELECT r.tenant, count(DISTINCT u.run_id) AS runs
          FROM used u JOIN scoped r ON r.id = u.run_id
         GROUP BY r.tenant
    ), per_key AS (
        SELECT r.tenant, k.key, sum(k.value::numeric) AS amount
          FROM used u JOIN scoped r ON r.id = u.run_id
         CROSS JOIN LATERAL jsonb_each(u.usage) AS k
         WHERE jsonb_typeof(k.value) = 'number'
         GROUP BY r.tenant, k.key
    )
    SELECT t.tenant, t.runs,
           coalesce(jsonb_object_agg(p.key, p.amount) FILTER (WHERE p.key IS NOT NULL),
                    '{}'::jsonb) AS usage
      FROM per_tenant t LEFT JOIN per_key p ON p.tenant IS NOT DISTINCT FROM t.tenant
     GROUP BY t.tenant, t.runs
     ORDER BY t.tenant NULLS FIRST
    """
)


@dataclass(frozen=True)
class TenantUsage:
    tenant: str | None
    """None: runs submitted for no tenant."""
    runs: int
    """Runs with any usage recorded."""
    usage: dict[str, float | int]


def tenant_usage(
    conn: Connection, *, tenant: str | None, every_tenant: bool, since: datetime | None
) -> list[TenantUsage]:
    """What the runs created since ``since`` used, summed per tenant: every tenant's (the
    runs of no tenant among them) with ``every_tenant``, else ``tenant``'s alone."""
    rows = conn.execute(
        _TENANT_USAGE, {"tenant": tenant, "every_tenant": every_tenant, "since": since}
    )
    return [
        TenantUsage(row.tenant, row.runs, {k: _number(v) for k, v in row.usage.items()})
        for row in rows
    ]


def _number(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number
