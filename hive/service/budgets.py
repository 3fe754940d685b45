"""Tenants' daily cost budgets: ``hive budgets list|show|set|clear``.

A tenant's budget caps what its runs' steps may spend per UTC day (reserved before each
LLM step, settled after it: :mod:`hive.guard.budgets`); a run's own budget is its submit's
``budget_usd`` or its pipeline's. Reading budgets is the ``admin``'s, for its own tenant,
and the operator's (``Right.USAGE``, as for usage and cost); setting and clearing them is
the operator's alone (``Right.BUDGETS``): a tenant does not raise its own ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hive.db import budget_limits
from hive.db.retrying import in_transaction
from hive.errors import InvalidArgument
from hive.pipelines.bounds import budget_problems, check_tenant
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings


@dataclass(frozen=True)
class BudgetView:
    """A tenant's daily budget and what it spent and holds reserved today (UTC)."""

    tenant: str
    daily_usd: float | None
    """None: no daily budget (what it spent today is still shown)."""
    day: str
    """The UTC day the figures are for (ISO date)."""
    spent_usd: float
    reserved_usd: float
    """Held by steps running now, settled at their real cost when they end."""
    remaining_usd: float | None
    """What a step may still reserve today; None without a budget."""
    warned: bool
    """Today's spending reached ``HIVE_BUDGET_WARN_AT`` of the budget."""

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "daily_usd": self.daily_usd,
            "day": self.day,
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "remaining_usd": self.remaining_usd,
            "warned": self.warned,
        }


def _view(row: budget_limits.TenantBudgetRow) -> BudgetView:
    remaining = None
    if row.daily_usd is not None:
        remaining = round(max(row.daily_usd - row.spent_usd - row.reserved_usd, 0.0), 9)
    return BudgetView(
        tenant=row.tenant,
        daily_usd=row.daily_usd,
        day=row.day.isoformat(),
        spent_usd=row.spent_usd,
        reserved_usd=row.reserved_usd,
        remaining_usd=remaining,
        warned=row.warned,
    )


@operation
def list_budgets(settings: Settings, caller: Caller) -> list[BudgetView]:
    """Every tenant with a daily budget or spending under one today; an admin's own alone.

    Raises:
        PermissionDenied: the caller is neither an admin nor the operator.
    """
    caller.require(Right.USAGE)
    rows = in_transaction(lambda conn: budget_limits.tenant_budgets(conn, caller.tenant), retry_s=0)
    return [_view(row) for row in rows]


@operation
def get_budget(settings: Settings, caller: Caller, tenant: str) -> BudgetView:
    """``tenant``'s daily budget and today's figures (no budget: ``daily_usd`` None). An
    admin asking about another tenant is told of no budget and no spending.

    Raises:
        PermissionDenied: the caller is neither an admin nor the operator.
        InvalidArgument: ``tenant`` is no tenant name.
    """
    caller.require(Right.USAGE)
    _check_tenant(tenant)
    rows = []
    if caller.tenant in (None, tenant):
        rows = in_transaction(lambda conn: budget_limits.tenant_budgets(conn, tenant), retry_s=0)
    if rows:
        return _view(rows[0])
    day = in_transaction(budget_limits.utc_today, retry_s=0)
    return BudgetView(tenant, None, day.isoformat(), 0.0, 0.0, None, warned=False)


@operation
def set_budget(
    settings: Settings, caller: Caller, tenant: str, daily_usd: float, *, by: str = "operator"
) -> BudgetView:
    """Give ``tenant`` a budget of ``daily_usd`` per UTC day, replacing its current one; it
    holds from the next reservation (steps already holding theirs run on). A
    ``budget_set`` event records it.

    Raises:
        PermissionDenied: the caller is not the operator.
        InvalidArgument: ``tenant`` is no tenant name, or ``daily_usd`` is not a finite
            amount above zero (also a ValueError).
    """
    caller.require(Right.BUDGETS)
    _check_tenant(tenant)
    problems = budget_problems("daily_usd", daily_usd)
    if problems:
        raise InvalidArgument(problems)
    in_transaction(lambda conn: budget_limits.set_daily(conn, tenant, daily_usd, by=by))
    return get_budget(settings, caller, tenant)


@operation
def clear_budget(settings: Settings, caller: Caller, tenant: str, *, by: str = "operator") -> bool:
    """Lift ``tenant``'s daily budget (a ``budget_cleared`` event); False when it had none.

    Raises:
        PermissionDenied: the caller is not the operator.
        InvalidArgument: ``tenant`` is no tenant name.
    """
    caller.require(Right.BUDGETS)
    _check_tenant(tenant)
    return in_transaction(lambda conn: budget_limits.clear(conn, tenant, by=by))


def _check_tenant(tenant: Any) -> None:
    if tenant is None:
        raise InvalidArgument(["tenant must be a tenant name, not None"])
    check_tenant(tenant)
