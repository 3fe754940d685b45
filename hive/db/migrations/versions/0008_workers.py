"""Workers in the registry.

Each `hive worker` registers itself on start (one row per Celery node name), heartbeats
from its main process, and marks itself offline on a warm shutdown. The sweep marks a
worker silent for longer than ``HIVE_WORKER_LOST_AFTER_S`` lost and takes back the steps
it was running. The table holds one row per node name: a few dozen rows, read whole, so
it needs no index beyond its key.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "workers",
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", ARRAY(sa.Text()), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("pool", sa.String(32), nullable=False),
        sa.Column("hive_version", sa.String(64), nullable=False),
        sa.Column("celery_version", sa.String(64), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("heartbeat_at", ts, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lost_at", ts, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("workers")
