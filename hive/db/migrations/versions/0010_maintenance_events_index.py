"""Each maintenance task's last success is read from an index.

``hive exporter`` reports when each maintenance task last succeeded, on every scrape.
Recovery alone records a ``maintenance`` event every 30 s, so reading them all grew with
the retention period; this partial index answers "the latest per task" with one probe
per task (hive/db/figures.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_events_maintenance ON events ((detail->>'task'), created_at) "
        "WHERE kind = 'maintenance'"
    )


def downgrade() -> None:
    op.drop_index("ix_events_maintenance", table_name="events")
