"""Every run's close is counted, by whichever process closes it.

``hive_runs_total{pipeline,status}`` is a Prometheus counter: ``rate()`` over it must never
see it go down. Runs are closed by workers (the last step's success, a step failing for
good), by the service layer (cancel) and by beat (a deadline expiring, recovery closing a
run a dying worker left open), and retention deletes old runs, so neither one process's
memory nor a ``count(*)`` over ``runs`` is such a counter. This table is: a trigger on
``runs`` adds one in the same transaction as the UPDATE that sets ``finished_at``, whatever
statement does it, and nothing ever subtracts. ``hive exporter`` serves the sums.

A replayed run is reopened (``finished_at`` back to NULL) and counted again when it closes
again: the counter counts closes, not runs.

Each closing connection adds to its own shard (``pg_backend_pid() % 16``), so workers
closing runs of one pipeline at once do not queue on one row lock until their commits.
The counts start from the runs the database still holds.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_closes",
        sa.Column("pipeline", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.execute(
        """
        CREATE FUNCTION hive_count_run_close() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO run_closes (pipeline, status, shard, n)
            VALUES (NEW.pipeline, NEW.status, pg_backend_pid() % 16, 1)
            ON CONFLICT (pipeline, status, shard) DO UPDATE SET n = run_closes.n + 1;
            RETURN NULL;
        END
        $$
        """
    )
    # UPDATE OF finished_at: the statements that only count steps down never fire it.
    op.execute(
        """
        CREATE TRIGGER runs_count_close AFTER UPDATE OF finished_at ON runs
            FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
            EXECUTE FUNCTION hive_count_run_close()
        """
    )
    op.execute(
        """
        CREATE TRIGGER runs_count_close_on_insert AFTER INSERT ON runs
            FOR EACH ROW WHEN (NEW.finished_at IS NOT NULL)
            EXECUTE FUNCTION hive_count_run_close()
        """
    )
    op.execute(
        """
        INSERT INTO run_closes (pipeline, status, shard, n)
        SELECT pipeline, status, 0, count(*) FROM runs
         WHERE finished_at IS NOT NULL
         GROUP BY 1, 2
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER runs_count_close_on_insert ON runs")
    op.execute("DROP TRIGGER runs_count_close ON runs")
    op.execute("DROP FUNCTION hive_count_run_close()")
    op.drop_table("run_closes")
