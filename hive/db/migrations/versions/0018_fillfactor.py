"""Room on each page of ``runs`` and ``step_runs`` for their rows' next versions.

A step's row is written four or five times in a few milliseconds (its insert, its mark, its
claim, its success, its publish confirmation) and its run's row two or three times a step.
PostgreSQL can write a row's new version without touching its indexes (a HOT update) only
when the new version fits on the same page; with the default fill factor of 100 a page is
filled by inserts, so the first updates of freshly inserted rows find no room and insert an
entry into every index of the table. A fill factor of 80 leaves a fifth of each page for
those versions (the usual setting for a job queue's tables). It applies to pages written
from now on; existing pages keep their fill until rewritten.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FILL = 80


def upgrade() -> None:
    op.execute(f"ALTER TABLE runs SET (fillfactor = {FILL})")
    op.execute(f"ALTER TABLE step_runs SET (fillfactor = {FILL})")


def downgrade() -> None:
    op.execute("ALTER TABLE step_runs RESET (fillfactor)")
    op.execute("ALTER TABLE runs RESET (fillfactor)")
