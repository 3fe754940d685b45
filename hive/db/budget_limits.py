"""Tenants' daily budgets: set, clear, and read with what each spent and holds today (UTC).

Every change is an event (``budget_set``, ``budget_cleared``) in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from hive.db import events

_SET = text(
    """
    INSERT INTO tenant_budgets (tenant, daily_usd, updated_at)
    VALUES (:tenant, CAST(:daily AS numeric(20, 9)), now())
    ON CONFLICT (tenant) DO UPDATE SET daily_usd = excluded.daily_usd, updated_at = now()
    """
)
_CLEAR = text("DELETE FROM tenant_budgets WHERE tenant = :tenant RETURNING daily_usd")

# Every tenant with a daily budget, and every tenant that spent or holds something today
# under one (a budget cleared today still shows what was spent).
_LIST = text(
    """
    SELECT coalesce(t.tenant, d.tenant) AS tenant, t.daily_usd,
           (now() AT TIME ZONE 'UTC')::date AS day,
           coalesce(d.spent_usd, 0) AS spent_usd, coalesce(d.reserved_usd, 0) AS reserved_usd,
           d.warned_at IS NOT NULL AS warned, t.updated_at
      FROM tenant_budgets t
      FULL JOIN (SELECT * FROM tenant_budget_days
                  WHERE day = (now() AT TIME ZONE 'UTC')::date) d ON d.tenant = t.tenant
     WHERE CAST(:tenant AS text) IS NULL OR coalesce(t.tenant, d.tenant) = :tenant
     ORDER BY 1
    """
)


@dataclass(frozen=True)
class TenantBudgetRow:
    tenant: str
    daily_usd: float | None
    """None: no daily budget (cleared; what it spent today is still shown)."""
    day: date
    spent_usd: float
    reserved_usd: float
    warned: bool
    updated_at: Any


def utc_today(conn: Connection) -> date:
    """The database's current UTC day: the day budgets are kept by."""
    day: date = conn.execute(text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar_one()
    return day


def set_daily(conn: Connection, tenant: str, daily_usd: float, *, by: str) -> None:
    """Give ``tenant`` a budget of ``daily_usd`` per UTC day (replacing its current one)."""
    conn.execute(_SET, {"tenant": tenant, "daily": Decimal(repr(round(daily_usd, 9)))})
    events.record(
        conn, "budget_set", {"budget": "tenant_daily", "tenant": tenant,
                             "limit_usd": daily_usd, "by": by},
    )  # fmt: skip


def clear(conn: Connection, tenant: str, *, by: str) -> bool:
    """Lift ``tenant``'s daily budget; False when it had none."""
    row = conn.execute(_CLEAR, {"tenant": tenant}).first()
    if row is None:
        return False
    events.record(
        conn, "budget_cleared", {"budget": "tenant_daily", "tenant": tenant,
                                 "limit_usd": float(row.daily_usd), "by": by},
    )  # fmt: skip
    return True


def tenant_budgets(conn: Connection, tenant: str | None = None) -> list[TenantBudgetRow]:
    """Every tenant's daily budget with today's figures (``tenant``'s alone if given)."""
    rows = conn.execute(_LIST, {"tenant": tenant}).all()
    return [
        TenantBudgetRow(
            tenant=r.tenant,
            daily_usd=None if r.daily_usd is None else float(r.daily_usd),
            day=r.day,
            spent_usd=float(r.spent_usd),
            reserved_usd=float(r.reserved_usd),
            warned=bool(r.warned),
            updated_at=r.updated_at,
        )
        for r in rows
    ]
