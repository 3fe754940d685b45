"""Human approvals: a step may wait for a person's decision.

``step_runs.status`` grows to hold ``awaiting_approval`` (17 characters): raising a
``varchar`` limit rewrites nothing. ``approvals`` holds one row per step that asked, its
current request and decision (the history is in ``events``); ``ix_approvals_pending``
serves the inbox, beat's timeouts and the exporter's gauge, all of which read the
pending ones alone.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.alter_column("step_runs", "status", type_=sa.String(32), existing_type=sa.String(16))
    op.create_table(
        "approvals",
        sa.Column(
            "run_id",
            UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step_id", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("input", JSONB(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("timeout_at", _TS, nullable=True),
        sa.Column("timeout_action", sa.String(16), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("input_edited", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_approvals_pending",
        "approvals",
        ["requested_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_approvals_pending", table_name="approvals")
    op.drop_table("approvals")
    op.alter_column("step_runs", "status", type_=sa.String(16), existing_type=sa.String(32))
