"""A tenant's runs in flight, counted for admission: how many of its runs are unfinished,
up to a bound, and the run an idempotency key already started."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Connection, func, select

from hive.db.models import runs


def _tenant_is(tenant: str | None) -> ColumnElement[bool]:
    return runs.c.tenant.is_(None) if tenant is None else runs.c.tenant == tenant


def count_in_flight(conn: Connection, tenant: str | None, *, up_to: int) -> int:
    """The tenant's unfinished runs (of no tenant: ``None``), counting no further than
    ``up_to``: the walk over ``ix_runs_unfinished`` stops there, whatever the backlog."""
    unfinished = (
        select(runs.c.id)
        .where(runs.c.finished_at.is_(None), _tenant_is(tenant))
        .limit(up_to)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(unfinished)).scalar_one())


def run_by_key(conn: Connection, tenant: str | None, key: str) -> uuid.UUID | None:
    """The run the tenant started with this idempotency key, if any."""
    query = select(runs.c.id).where(_tenant_is(tenant), runs.c.idempotency_key == key)
    found = conn.execute(query).scalar()
    return None if found is None else uuid.UUID(str(found))
