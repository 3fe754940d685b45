"""The migrations and the models describe the same schema, and `db upgrade` is idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from hive.db.migrate import upgrade
from hive.db.models import Base


def test_migrated_database_matches_the_models(database_url: str) -> None:
    upgrade(database_url)  # a second time: nothing to do, no error
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": lambda name, kind, _: not str(name).startswith("test_")}
        )
        diffs = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diffs == []
