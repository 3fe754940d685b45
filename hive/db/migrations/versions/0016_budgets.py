"""Cost budgets: a run's own, a tenant's per UTC day, and the reservations held against them.

A run's budget lives on its row (``budget_usd``, NULL: none), with what its steps spent
and what running steps hold reserved. A tenant's daily limit is a row of
``tenant_budgets``; what it spent and holds on one UTC day is a row of
``tenant_budget_days``, made by the first reservation of that day. Each reservation is a
row of ``budget_holds`` keyed by the step attempt that holds it, so that recovery can give
back what an attempt that ended without settling (a killed worker) still held. Amounts are
``numeric``: the reservation compares sums exactly.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_USD = sa.Numeric(20, 9)


def upgrade() -> None:
    op.add_column("runs", sa.Column("budget_usd", _USD, nullable=True))
    op.add_column(
        "runs", sa.Column("budget_spent_usd", _USD, server_default=sa.text("0"), nullable=False)
    )
    op.add_column(
        "runs",
        sa.Column("budget_reserved_usd", _USD, server_default=sa.text("0"), nullable=False),
    )
    op.add_column("runs", sa.Column("budget_warned_at", _TS, nullable=True))
    op.create_table(
        "tenant_budgets",
        sa.Column("tenant", sa.String(200), primary_key=True),
        sa.Column("daily_usd", _USD, nullable=False),
        sa.Column("updated_at", _TS, server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "tenant_budget_days",
        sa.Column("tenant", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("spent_usd", _USD, server_default=sa.text("0"), nullable=False),
        sa.Column("reserved_usd", _USD, server_default=sa.text("0"), nullable=False),
        sa.Column("warned_at", _TS, nullable=True),
    )
    op.create_table(
        "budget_holds",
        sa.Column(
            "run_id",
            UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step_id", sa.String(200), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("amount_usd", _USD, nullable=False),
        sa.Column("on_run", sa.Boolean(), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("budget_holds")
    op.drop_table("tenant_budget_days")
    op.drop_table("tenant_budgets")
    for column in ("budget_warned_at", "budget_reserved_usd", "budget_spent_usd", "budget_usd"):
        op.drop_column("runs", column)
