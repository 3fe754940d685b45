"""Each run has a trace id.

A W3C trace-context trace id (32 lowercase hex digits), made at submit and stored with the
run: every log record of the run carries it, the claim hands it to the step, and the
agents' external calls propagate it (``traceparent``). Runs stored before this revision
have none (NULL): adding the column is then a catalogue change, not a rewrite of ``runs``.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "trace_id")
