"""What the farm's runs used and cost, per tenant: ``hive usage``.

Usage is what agents report (the ``llm`` agent: prompt and completion tokens, calls, and
their cost by the price table), stored with each attempt's outcome. Reading it is the
``admin``'s, for its own tenant, and the operator's, for any or every tenant
(``Right.USAGE``); a run's own usage is part of the run (:func:`hive.service.get_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hive.db import usage as usage_store
from hive.db.retrying import in_transaction
from hive.pipelines.bounds import check_tenant
from hive.service.arguments import check_listing
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.views import split_cost
from hive.settings import Settings


@dataclass(frozen=True)
class UsageView:
    """One tenant's usage over the runs created in the period asked for."""

    tenant: str | None
    """None: runs submitted for no tenant."""
    runs: int
    """Runs that recorded any usage."""
    usage: dict[str, float | int]
    """Counters summed over every attempt of every step: ``prompt_tokens``,
    ``completion_tokens``, ``llm_calls``, and whatever other agents report."""
    cost: float | None
    """What it cost by the price table, in its currency; None if nothing was priced."""

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "runs": self.runs, "usage": self.usage, "cost": self.cost}


@operation
def usage_by_tenant(
    settings: Settings,
    caller: Caller,
    *,
    tenant: str | None = None,
    since: datetime | None = None,
) -> list[UsageView]:
    """Usage and cost of the runs created since ``since`` (all time when None), one view
    per tenant, tenants with no usage left out. The operator sees every tenant (the runs
    of no tenant first, as ``tenant`` None) or the one it names; an admin its own tenant
    alone, and nothing of another it names.

    Raises:
        PermissionDenied: the caller is neither an admin nor the operator.
        InvalidArgument: ``tenant`` is no tenant name, or ``since`` is not a datetime.
    """
    caller.require(Right.USAGE)
    check_tenant(tenant)
    check_listing(limit=1, since=since)
    if caller.tenant is not None and tenant not in (None, caller.tenant):
        return []  # as if it had none: a tenant learns nothing of another
    wanted = caller.tenant if caller.tenant is not None else tenant
    rows = in_transaction(
        lambda conn: usage_store.tenant_usage(
            conn, tenant=wanted, every_tenant=wanted is None, since=since
        ),
        retry_s=0,
    )
    views = []
    for row in rows:
        counters, cost = split_cost(row.usage)
        views.append(UsageView(tenant=row.tenant, runs=row.runs, usage=counters, cost=cost))
    return views
