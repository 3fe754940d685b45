"""What retention purged, counted: ``hive_purged_total``.

``purge_retention`` deletes finished runs, events, gone workers, tenants' past daily
spending and audit records; its counts were only in its maintenance event and the log.
The purge adds each batch's count here in the transaction that deletes it, and nothing
subtracts, so ``hive exporter`` serves a counter Prometheus can ``rate()`` (the same design
as ``run_closes``, migration 0014; one writer at a time, under the purge's lock, so one row
per kind).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purge_counts",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("purge_counts")
