"""A tenant's runs are listed from an index.

The service layer scopes every read of a tenant-bound caller by ``runs.tenant``: listing
a tenant's recent runs (optionally of one pipeline), its failed runs for a replay, its
dead letters. Without these, each was a walk of ``ix_runs_created_at`` over every
tenant's runs. The step path never filters on ``tenant``, so the planner cannot pick
them for its statements (see 0003).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_tenant_created", "runs", ["tenant", "created_at"])
    op.create_index("ix_runs_tenant_pipeline_created", "runs", ["tenant", "pipeline", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_tenant_pipeline_created", table_name="runs")
    op.drop_index("ix_runs_tenant_created", table_name="runs")
