"""The migrations and the models describe the same schema, and `db upgrade` is idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from hive.db.migrate import upgrade
from hive.db.models import UPDATE_HEAVY_FILL, Base, Run, StepRun


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


def test_runs_and_steps_leave_room_on_their_pages_as_the_models_say(database_url: str) -> None:
    """Migration 0018: the update-heavy tables keep a fill factor below 100, so a row's next
    versions fit on its page (HOT updates, no index entries)."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        options = dict(
            conn.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class "
                    "WHERE relname IN ('runs', 'step_runs') AND relkind = 'r'"
                )
            ).all()
        )
    engine.dispose()
    for model in (Run, StepRun):
        wanted = model.__table__.dialect_options["postgresql"]["with"]
        assert wanted == {"fillfactor": UPDATE_HEAVY_FILL}
        assert options[model.__tablename__] == [f"fillfactor={UPDATE_HEAVY_FILL}"]
    assert UPDATE_HEAVY_FILL < 100
