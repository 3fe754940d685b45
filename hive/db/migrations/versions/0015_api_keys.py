"""API keys and the audit trail of the HTTP API (issue 12).

``api_keys`` holds one row per key: its id (the part of the key before the secret, so a
request's key is found by primary key), its tenant (NULL: the operator's key, across every
tenant), its role, and a hash of the whole key, never the key. ``audit`` records every call
that changes something: who (key id, tenant, role), what (action, target), how it ended
(outcome), when and from where (client address). Neither table references ``runs``: an
audit row outlives the run it names, and a revoked key stays listed.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.CheckConstraint(
            "role IN ('viewer', 'producer', 'admin', 'operator')", name="ck_api_keys_role"
        ),
        # The operator, and only the operator, acts for every tenant (hive.service.caller).
        sa.CheckConstraint(
            "(role = 'operator') = (tenant IS NULL)", name="ck_api_keys_operator_tenant"
        ),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("client", sa.String(200), nullable=True),
        sa.Column("at", _TS, server_default=sa.func.now(), nullable=False),
    )
    # `hive audit list [--tenant T] [--since 1h]`: newest first, by tenant or all.
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_tenant_at", "audit", ["tenant", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_tenant_at", table_name="audit")
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_table("audit")
    op.drop_table("api_keys")
