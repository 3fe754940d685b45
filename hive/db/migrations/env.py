"""Alembic environment: the URL comes from Hive's settings via the Config object."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from hive.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Two `db upgrade` at once (several containers starting) must not race.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7419001)")
            context.run_migrations()
    engine.dispose()


run_migrations_online()
