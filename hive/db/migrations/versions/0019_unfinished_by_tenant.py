"""A capped submit counts its tenant's unfinished runs alone.

The API's cap on a tenant's runs in flight (``HIVE_API_MAX_RUNS_IN_FLIGHT``) is counted by
the submit's own insert, under the tenant's advisory lock. The count walked
``ix_runs_unfinished``, every tenant's unfinished runs in order of creation, and read each
one's row to check its tenant: with 50,000 runs queued for one tenant, every other
tenant's submit took 6 ms of that walk (measured), all of it while holding its tenant's
lock, and the cost grew with the farm's backlog. This index holds each unfinished run under
its tenant (a run without one under ``''``, as ``ix_runs_idempotency`` does), so the walk
reads that tenant's unfinished runs and stops at the cap.

A run writes one more index entry, at its insert. Its close writes none (the closed row is
outside the predicate), and the updates between stay HOT (neither ``tenant`` nor
``finished_at`` changes).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_runs_unfinished_by_tenant",
        "runs",
        [sa.text("coalesce(tenant, '')")],
        postgresql_where=sa.text("finished_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_unfinished_by_tenant", table_name="runs")
