"""A run without a tenant or an idempotency key writes no entry in the indexes for them.

Every run is written three times (its insert, its start, its close), and the close is never
a HOT update (``finished_at`` is in ``ix_runs_unfinished``'s predicate), so each index on
``runs`` costs an entry at the insert and another at the close. The tenant indexes (0006)
serve only reads scoped by ``tenant = :tenant``, which a partial index ``WHERE tenant IS NOT
NULL`` serves as well; a farm without tenants no longer pays for them. Submit no longer
makes up an idempotency key for a run that has none (the run id, made before the insert,
tells a retried insert from a new one instead), so such a run has no entry in
``ix_runs_idempotency``; the keys made up before stay and keep working.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_TENANT = sa.text("tenant IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_runs_tenant_created", table_name="runs")
    op.drop_index("ix_runs_tenant_pipeline_created", table_name="runs")
    op.create_index(
        "ix_runs_tenant_created", "runs", ["tenant", "created_at"], postgresql_where=_TENANT
    )
    op.create_index(
        "ix_runs_tenant_pipeline_created",
        "runs",
        ["tenant", "pipeline", "created_at"],
        postgresql_where=_TENANT,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_tenant_pipeline_created", table_name="runs")
    op.drop_index("ix_runs_tenant_created", table_name="runs")
    op.create_index("ix_runs_tenant_created", "runs", ["tenant", "created_at"])
    op.create_index("ix_runs_tenant_pipeline_created", "runs", ["tenant", "pipeline", "created_at"])
