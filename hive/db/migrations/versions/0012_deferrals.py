"""Deferred steps: a step the guard (a rate or concurrency limit, an open breaker) sends back
to its queue is counted, and the start of its wait kept, so a step cannot wait forever.

``deferrals`` counts every deferral of the step (each is an attempt number that did not
run, so the step's real attempts are ``attempt - deferrals``); ``deferred_since`` is when
its current run of deferrals began, cleared when an attempt really ends.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL 11+ adds the column without rewriting the table.
    op.add_column(
        "step_runs",
        sa.Column("deferrals", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("step_runs", sa.Column("deferred_since", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("step_runs", "deferred_since")
    op.drop_column("step_runs", "deferrals")
