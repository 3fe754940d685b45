"""Durability: dead letters, task ids for revoking, attempt base for replays.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("step_runs", sa.Column("task_id", sa.String(64)))
    # Attempts made before the last replay: retries are counted from here.
    op.add_column(
        "step_runs", sa.Column("attempt_base", sa.Integer, nullable=False, server_default="0")
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", pg.JSONB, nullable=False),
        sa.Column("input", pg.JSONB),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("replayed_at", TS),
    )
    op.create_index("ix_dead_letters_run_id", "dead_letters", ["run_id"])
    op.create_index(
        "ix_dead_letters_open",
        "dead_letters",
        ["pipeline", "created_at"],
        postgresql_where=sa.text("replayed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_column("step_runs", "attempt_base")
    op.drop_column("step_runs", "task_id")
