"""Cost budgets: reserve a step's estimated cost before it runs, settle what it cost after.

A reservation is a compare-and-set: ``UPDATE ... WHERE spent + reserved + estimate <=
limit``. Two workers reserving against one budget queue on its row lock, and the second
re-reads the row as the first left it before its condition is checked, so the last
dollar is reserved once. A step is held to its run's budget (``runs.budget_usd``) and to
its tenant's budget for the UTC day (``tenant_budgets``, spent per day in
``tenant_budget_days``), always locked in that order. Each reservation is a
``budget_holds`` row keyed by the step attempt: settling deletes it and moves its amount
from reserved to spent (the actual cost), and an attempt that ends without settling (a
killed worker, a lost lease) has it released by the statement that records the attempt's
end, or by recovery. Every decision is an event, written in the decision's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from hive.db import events
from hive.errors import BudgetExceeded
from hive.statuses import BudgetScope

# Amounts travel as numeric: float8 arithmetic would make the comparison inexact.
_AMOUNT = "CAST(:amount AS numeric(20, 9))"
_COST = "CAST(:cost AS numeric(20, 9))"
_TODAY = "(now() AT TIME ZONE 'UTC')::date"

_BUDGETS_OF = text(
    """
    SELECT r.tenant, r.budget_usd, t.daily_usd
      FROM runs r LEFT JOIN tenant_budgets t ON t.tenant = r.tenant
     WHERE r.id = :run_id
    """
)

_RESERVE_RUN = text(
    f"""
    UPDATE runs SET budget_reserved_usd = budget_reserved_usd + {_AMOUNT}
     WHERE id = :run_id AND budget_usd IS NOT NULL
       AND budget_spent_usd + budget_reserved_usd + {_AMOUNT} <= budget_usd
    RETURNING budget_usd, budget_spent_usd, budget_reserved_usd
    """
)
_RUN_FIGURES = text(
    "SELECT budget_usd, budget_spent_usd, budget_reserved_usd FROM runs WHERE id = :run_id"
)
_UNRESERVE_RUN = text(
    f"UPDATE runs SET budget_reserved_usd = budget_reserved_usd - {_AMOUNT} WHERE id = :run_id"
)

_OPEN_DAY = text(
    f"""
    INSERT INTO tenant_budget_days (tenant, day) VALUES (:tenant, {_TODAY})
    ON CONFLICT (tenant, day) DO NOTHING
    """
)
_RESERVE_DAY = text(
    f"""
    UPDATE tenant_budget_days d SET reserved_usd = d.reserved_usd + {_AMOUNT}
      FROM tenant_budgets t
     WHERE d.tenant = :tenant AND d.day = {_TODAY} AND t.tenant = d.tenant
       AND d.spent_usd + d.reserved_usd + {_AMOUNT} <= t.daily_usd
    RETURNING d.day, t.daily_usd, d.spent_usd, d.reserved_usd
    """
)
_DAY_FIGURES = text(
    f"""
    SELECT t.daily_usd, d.spent_usd, d.reserved_usd
      FROM tenant_budget_days d JOIN tenant_budgets t ON t.tenant = d.tenant
     WHERE d.tenant = :tenant AND d.day = {_TODAY}
    """
)

_HOLD = text(
    f"""
    INSERT INTO budget_holds (run_id, step_id, attempt, amount_usd, on_run, tenant, day)
    VALUES (:run_id, :step_id, :attempt, {_AMOUNT}, :on_run, :tenant, :day)
    """
)


@dataclass(frozen=True)
class Hold:
    """A step attempt's reservation."""

    run_id: uuid.UUID
    step_id: str
    attempt: int
    amount_usd: float
    scopes: tuple[BudgetScope, ...]


def reserve(
    conn: Connection, run_id: uuid.UUID, step_id: str, attempt: int, estimate_usd: float
) -> Hold | None:
    """Reserve ``estimate_usd`` for the attempt against every budget the run is held to;
    None when it is held to none (nothing is written).

    Raises:
        BudgetExceeded: a budget has no room for the estimate. Nothing is reserved (the
            caller's transaction rolls back); the caller stops the run.
    """
    row = conn.execute(_BUDGETS_OF, {"run_id": run_id}).first()
    if row is None or (row.budget_usd is None and row.daily_usd is None):
        return None
    amount = _decimal(estimate_usd)
    params: dict[str, Any] = {"run_id": run_id, "amount": amount, "tenant": row.tenant}
    scopes: list[BudgetScope] = []
    figures: dict[str, Any] = {"estimate_usd": float(amount)}
    if row.budget_usd is not None:
        held = conn.execute(_RESERVE_RUN, params).first()
        if held is None:
            raise _refusal(conn, BudgetScope.RUN, _RUN_FIGURES, params, amount, row.tenant)
        scopes.append(BudgetScope.RUN)
        figures["run"] = _figures(held.budget_usd, held.budget_spent_usd, held.budget_reserved_usd)
    day: date | None = None
    if row.daily_usd is not None and row.tenant is not None:
        conn.execute(_OPEN_DAY, params)
        held = conn.execute(_RESERVE_DAY, params).first()
        if held is None:
            # Raising rolls the run's reservation back with the rest of the transaction.
            raise _refusal(conn, BudgetScope.TENANT_DAILY, _DAY_FIGURES, params, amount, row.tenant)
        scopes.append(BudgetScope.TENANT_DAILY)
        day = held.day
        figures["tenant_daily"] = {
            "tenant": row.tenant,
            "day": held.day.isoformat(),
            **_figures(held.daily_usd, held.spent_usd, held.reserved_usd),
        }
    if not scopes:
        return None
    conn.execute(
        _HOLD,
        {**params, "step_id": step_id, "attempt": attempt, "on_run": BudgetScope.RUN in scopes,
         "tenant": row.tenant if day is not None else None, "day": day},
    )  # fmt: skip
    events.record(
        conn, "budget_reserved", {"attempt": attempt, **figures}, run_id=run_id, step_id=step_id
    )
    return Hold(run_id, step_id, attempt, float(amount), tuple(scopes))


def _refusal(
    conn: Connection,
    scope: BudgetScope,
    query: Any,
    params: dict[str, Any],
    amount: Decimal,
    tenant: str | None,
) -> BudgetExceeded:
    row = conn.execute(query, params).first()
    limit, spent, reserved = (Decimal(0), Decimal(0), Decimal(0)) if row is None else row
    if limit is None:  # the limit was lifted meanwhile: report it as it stood, empty
        limit = Decimal(0)
    return BudgetExceeded(
        str(scope),
        float(limit),
        float(spent),
        float(reserved),
        float(amount),
        tenant=tenant if scope == BudgetScope.TENANT_DAILY else None,
    )


_TAKE_HOLD = text(
    """
    DELETE FROM budget_holds WHERE run_id = :run_id AND step_id = :step_id AND attempt = :attempt
    RETURNING amount_usd, on_run, tenant, day
    """
)

# The row is locked first, so its warning mark is read as it was before this settle.
_SETTLE_RUN = text(
    f"""
    WITH before AS (
        SELECT budget_warned_at FROM runs WHERE id = :run_id FOR NO KEY UPDATE
    )
    UPDATE runs
       SET budget_reserved_usd = greatest(budget_reserved_usd - {_AMOUNT}, 0),
           budget_spent_usd = budget_spent_usd + {_COST},
           budget_warned_at = CASE
               WHEN budget_warned_at IS NULL AND budget_usd IS NOT NULL
                AND budget_spent_usd + {_COST} >= budget_usd * :warn_at
               THEN now() ELSE budget_warned_at END
     WHERE id = :run_id
    RETURNING budget_usd AS limit_usd, budget_spent_usd AS spent_usd,
              (SELECT budget_warned_at FROM before) IS NULL
                  AND budget_warned_at IS NOT NULL AS warned
    """
)
_SETTLE_DAY = text(
    f"""
    WITH before AS (
        SELECT warned_at FROM tenant_budget_days
         WHERE tenant = :tenant AND day = :day FOR NO KEY UPDATE
    ), lim AS (
        SELECT daily_usd FROM tenant_budgets WHERE tenant = :tenant
    )
    UPDATE tenant_budget_days d
       SET reserved_usd = greatest(d.reserved_usd - {_AMOUNT}, 0),
           spent_usd = d.spent_usd + {_COST},
           warned_at = CASE
               WHEN d.warned_at IS NULL AND (SELECT daily_usd FROM lim) IS NOT NULL
                AND d.spent_usd + {_COST} >= (SELECT daily_usd FROM lim) * :warn_at
               THEN now() ELSE d.warned_at END
     WHERE d.tenant = :tenant AND d.day = :day
    RETURNING (SELECT daily_usd FROM lim) AS limit_usd, d.spent_usd,
              (SELECT warned_at FROM before) IS NULL AND d.warned_at IS NOT NULL AS warned
    """
)


@dataclass(frozen=True)
class BudgetWarning:
    """A budget that this settle brought to its warning fraction (once per budget)."""

    scope: BudgetScope
    limit_usd: float
    spent_usd: float
    tenant: str | None = None


def settle(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    cost_usd: float,
    *,
    warn_at: float,
    by: str = "worker",
) -> list[BudgetWarning] | None:
    """Settle the attempt's reservation: its amount leaves reserved, ``cost_usd`` (what the
    attempt really cost) joins spent. None when the attempt holds no reservation (it was
    never held to a budget, or was settled or released already). Returns the budgets that
    reached ``warn_at`` of their limit, each once, with a ``budget_warning`` event.

    ``by`` says who settled, for the event: the worker, or the farm releasing what an
    attempt that ended without settling still held (``outcome``, ``recovery``)."""
    hold = conn.execute(
        _TAKE_HOLD, {"run_id": run_id, "step_id": step_id, "attempt": attempt}
    ).first()
    if hold is None:
        return None
    cost = _decimal(max(cost_usd, 0.0))
    params: dict[str, Any] = {
        "run_id": run_id, "amount": hold.amount_usd, "cost": cost, "warn_at": warn_at,
        "tenant": hold.tenant, "day": hold.day,
    }  # fmt: skip
    warnings: list[BudgetWarning] = []
    settled: dict[str, Any] = {
        "attempt": attempt,
        "reserved_usd": float(hold.amount_usd),
        "cost_usd": float(cost),
        "by": by,
    }
    if hold.on_run:
        row = conn.execute(_SETTLE_RUN, params).first()
        if row is not None:
            settled["run_spent_usd"] = float(row.spent_usd)
            if row.warned:
                warnings.append(
                    BudgetWarning(BudgetScope.RUN, float(row.limit_usd), float(row.spent_usd))
                )
    if hold.tenant is not None and hold.day is not None:
        row = conn.execute(_SETTLE_DAY, params).first()
        if row is not None:
            settled["tenant_spent_usd"] = float(row.spent_usd)
            if row.warned:
                warnings.append(
                    BudgetWarning(
                        BudgetScope.TENANT_DAILY,
                        float(row.limit_usd),
                        float(row.spent_usd),
                        hold.tenant,
                    )
                )
    events.record(conn, "budget_settled", settled, run_id=run_id, step_id=step_id)
    for warning in warnings:
        detail = {
            "budget": str(warning.scope),
            "tenant": warning.tenant,
            "limit_usd": warning.limit_usd,
            "spent_usd": warning.spent_usd,
            "fraction": round(warning.spent_usd / warning.limit_usd, 4)
            if warning.limit_usd
            else None,
            "warn_at": warn_at,
        }
        events.record(conn, "budget_warning", detail, run_id=run_id, step_id=step_id)
    return warnings


# Holds whose attempt is over (the step no longer runs it) and whose attempt could not be
# running any more (older than its timeout and the lease's grace): a worker that died, or a
# settle that could not reach the database. The cost is what the attempt recorded, if any.
_ORPHANS = text(
    """
    SELECT h.run_id, h.step_id, h.attempt,
           coalesce(
               (SELECT (a.usage->>'cost')::float8 FROM step_attempts a
                 WHERE a.run_id = h.run_id AND a.step_id = h.step_id
                   AND a.attempt = h.attempt AND jsonb_typeof(a.usage->'cost') = 'number'
                   -- An escalated attempt's number is run again once approved.
                   AND a.outcome <> 'escalated'
                 LIMIT 1),
               CASE WHEN s.status = 'succeeded' AND s.attempt = h.attempt
                     AND jsonb_typeof(s.usage->'cost') = 'number'
                    THEN (s.usage->>'cost')::float8 END,
               0) AS cost
      FROM budget_holds h
      LEFT JOIN step_runs s ON s.run_id = h.run_id AND s.step_id = h.step_id
     WHERE (s.run_id IS NULL OR s.status <> 'running' OR s.attempt <> h.attempt)
       AND h.created_at < now() - make_interval(
               secs => coalesce((s.options->>'timeout')::float8, :default_timeout) + :grace)
     ORDER BY h.created_at
     LIMIT :limit
       FOR UPDATE OF h SKIP LOCKED
    """
)


@dataclass(frozen=True)
class Orphan:
    run_id: uuid.UUID
    step_id: str
    attempt: int
    cost_usd: float


def orphaned_holds(
    conn: Connection, *, default_timeout_s: float, grace_s: float, limit: int = 500
) -> list[Orphan]:
    """Reservations left by attempts that are over and never settled (locked, skipping
    those another sweep holds); :func:`settle` each with ``by="recovery"``."""
    params = {"default_timeout": default_timeout_s, "grace": grace_s, "limit": limit}
    return [
        Orphan(r.run_id, r.step_id, r.attempt, float(r.cost))
        for r in conn.execute(_ORPHANS, params)
    ]


def _figures(limit: Any, spent: Any, reserved: Any) -> dict[str, float]:
    return {"limit_usd": float(limit), "spent_usd": float(spent), "reserved_usd": float(reserved)}


def _decimal(amount: float) -> Decimal:
    return Decimal(repr(round(float(amount), 9)))
