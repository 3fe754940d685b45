"""Whether the database holds this Hive's schema: the readiness check of ``hive worker``,
``hive beat``, ``hive api``'s ``/readyz`` and the commands that check their servers first."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Connection, text

from hive.db.retrying import in_transaction
from hive.errors import DatabaseNotMigrated
from hive.settings import get_settings

_TABLES = text("SELECT to_regclass('runs') IS NOT NULL, to_regclass('alembic_version') IS NOT NULL")
_REVISION = text("SELECT version_num FROM alembic_version LIMIT 1")


@lru_cache(maxsize=1)
def _revisions() -> tuple[str, frozenset[str]]:
    """This Hive's newest migration and every one it has (read from the scripts once)."""
    from alembic.script import ScriptDirectory

    from hive.db.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None, "the migrations have one head"
    return head, frozenset(r.revision for r in script.walk_revisions())


def _state(conn: Connection) -> tuple[bool, str | None]:
    """(Hive's tables are there, the database's migration revision or None)."""
    row = conn.execute(_TABLES).one()
    revision = conn.execute(_REVISION).scalar() if row[1] else None
    return bool(row[0]), revision


def check_migrated() -> None:
    """PostgreSQL answers at once and holds this Hive's schema: its tables, at the newest
    migration this Hive has. A database at a revision this Hive does not know (a newer
    Hive migrated it) is let be: migrations add, and older code reads what it knows.

    Raises:
        ServiceUnavailable: PostgreSQL cannot be reached (not retried).
        SettingsError: libpq refuses ``HIVE_DATABASE_URL``.
        DatabaseNotMigrated: no Hive tables, or an older schema (run ``hive db upgrade``).
    """
    tables, revision = in_transaction(_state, retry_s=0)
    database = get_settings().database.name
    if not tables:
        raise DatabaseNotMigrated(database)
    head, known = _revisions()
    if revision is not None and revision != head and revision in known:
        raise DatabaseNotMigrated(
            database, f"is at schema revision {revision}, and this Hive needs {head}"
        )
