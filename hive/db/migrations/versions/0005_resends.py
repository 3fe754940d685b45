"""Re-sends of a step are counted, so the recovery sweep can space them out.

The age-based re-send sent another copy of every step marked sent for longer than
``HIVE_REDISPATCH_AFTER_S`` on every sweep, whether or not its message was lost: a
queue nobody consumed grew by one copy per step and sweep. The sweep now backs off
on this count (the n-th re-send waits the threshold times 2^n, capped), and the
count shows how often a step's message had to be sent again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL 11+ adds the column without rewriting the table.
    op.add_column(
        "step_runs",
        sa.Column("resends", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    op.drop_column("step_runs", "resends")
