"""The schema revision the readiness check asks for is Alembic's head, and revisions keep
the numbering that lets it tell an older schema from a newer one."""

from __future__ import annotations

import re

from alembic.config import Config
from alembic.script import ScriptDirectory

from hive.db import migrate
from hive.db.schema import SCHEMA_REVISION


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(migrate._MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_the_schema_revision_is_the_newest_migration() -> None:
    assert _script().get_current_head() == SCHEMA_REVISION, (
        "a new migration: set hive.db.schema.SCHEMA_REVISION to its revision"
    )


def test_revisions_are_numbered_in_order() -> None:
    revisions = sorted(r.revision for r in _script().walk_revisions())
    assert all(re.fullmatch(r"\d{4}", r) for r in revisions), revisions
    assert revisions == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
