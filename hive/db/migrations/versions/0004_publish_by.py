"""Steps marked sent whose message was never published are found in seconds.

The dispatcher marks steps as sent in the transaction that made them ready and
publishes after commit. A process that died in between left marks that only the
age-based re-send (``HIVE_REDISPATCH_AFTER_S``, minutes) would find. Now a mark
carries ``publish_by``; a successful publish clears it, and the recovery sweep
sends again what is still unconfirmed after that time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_runs", sa.Column("publish_by", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("step_runs", "publish_by")
