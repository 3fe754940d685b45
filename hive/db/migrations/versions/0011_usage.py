"""Steps and failed attempts record what they used: tokens, calls, cost.

``usage`` holds the counters an agent reported (``ctx.report_usage``): for the ``llm``
agent ``prompt_tokens``, ``completion_tokens``, ``llm_calls`` and ``cost`` (by the price
table). A step's row has its successful attempt's; each failed attempt's row its own, since
a failed call still cost its tokens. A run's usage, and a tenant's, are their sums. NULL
when nothing was reported: adding the columns rewrites neither table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_runs", sa.Column("usage", JSONB(), nullable=True))
    op.add_column("step_attempts", sa.Column("usage", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("step_attempts", "usage")
    op.drop_column("step_runs", "usage")
