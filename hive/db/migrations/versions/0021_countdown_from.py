"""When a mark with a countdown was made, so recovery can tell a message a lost worker held.

A message sent with a countdown (a retry's backoff, a deferral) is taken by a worker at
once and held until it falls due; its mark's ``enqueued_at`` is that due time. A worker
lost after taking it leaves it in Redis's unacked hash for the visibility timeout (hours).
Recovery re-sends a due step at once when a worker was lost since its mark was made, and
the mark's time is ``enqueued_at`` only when there was no countdown: ``countdown_from``
keeps it for the others (NULL for a mark without a countdown).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: PostgreSQL adds the column without rewriting the table.
    op.add_column("step_runs", sa.Column("countdown_from", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("step_runs", "countdown_from")
