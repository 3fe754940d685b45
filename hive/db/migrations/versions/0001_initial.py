"""Runs, steps, attempts and events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("pipeline_version", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(200)),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("input", pg.JSONB, nullable=False),
        sa.Column("output", pg.JSONB),
        sa.Column("output_spec", pg.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", pg.JSONB),
        sa.Column("failed_step", sa.String(200)),
        sa.Column("steps_remaining", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("deadline_at", TS),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_runs_pipeline", "runs", ["pipeline"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index(
        "ix_runs_idempotency",
        "runs",
        [sa.text("coalesce(tenant, '')"), "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_runs_active",
        "runs",
        ["status"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )

    op.create_table(
        "step_runs",
        sa.Column(
            "run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step_id", sa.String(200), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("needs", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("dependents", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("chain_next", sa.String(200)),
        sa.Column("inputs_from", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("input_template", pg.JSONB, nullable=False),
        sa.Column("options", pg.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pending_needs", sa.Integer, nullable=False),
        sa.Column("enqueued_at", TS),
        sa.Column("lease_until", TS),
        sa.Column("input", pg.JSONB),
        sa.Column("output", pg.JSONB),
        sa.Column("error", pg.JSONB),
        sa.Column("worker", sa.String(300)),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index(
        "ix_step_runs_live",
        "step_runs",
        ["status", "lease_until"],
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )

    op.create_table(
        "step_attempts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            pg.UUID(as_uuid=True),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", pg.JSONB),
        sa.Column("worker", sa.String(300)),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS, server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_step_attempts_step", "step_attempts", ["run_id", "step_id"])

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("run_id", pg.UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("step_id", sa.String(200)),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", pg.JSONB),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"])
    op.create_index("ix_events_created_at", "events", ["created_at"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("step_attempts")
    op.drop_table("step_runs")
    op.drop_table("runs")
