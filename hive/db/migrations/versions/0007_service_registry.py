"""The service registry: instances of the services agents call, with their health.

``status`` is passing, warning or critical (``hive.statuses.ServiceStatus``); beat's
``health_sweep`` and ``cleanup_services`` change it and delete what stayed critical too
long. Listing is by service and status (pick() reads a service's passing instances) and by
tenant; the table is small, so these are the only indexes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "service_instances",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("health_url", sa.Text(), nullable=True),
        sa.Column("ttl_s", sa.Double(), nullable=True),
        sa.Column("deregister_after_s", sa.Double(), nullable=True),
        sa.Column("meta", JSONB(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_check_at", _TS, nullable=True),
        sa.Column("last_check_output", sa.Text(), nullable=True),
        sa.Column("last_heartbeat_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("registered_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("critical_since", _TS, nullable=True),
    )
    op.create_index(
        "ix_service_instances_service_status", "service_instances", ["service", "status"]
    )
    op.create_index(
        "ix_service_instances_tenant_service", "service_instances", ["tenant", "service"]
    )
    op.create_index("ix_service_instances_status", "service_instances", ["status"])


def downgrade() -> None:
    op.drop_table("service_instances")
