"""Whether the database holds this Hive's schema: the readiness check of ``hive worker``,
``hive beat``, ``hive api``'s ``/readyz`` and the commands that check their servers first."""

from __future__ import annotations

from sqlalchemy import Connection, text

from hive.db.retrying import in_transaction
from hive.errors import DatabaseNotMigrated
from hive.settings import get_settings

_TABLES = text("SELECT to_regclass('runs') IS NOT NULL, to_regclass('alembic_version') IS NOT NULL")
_REVISION = text("SELECT version_num FROM alembic_version LIMIT 1")


# The newest migration this Hive has. Revisions are numbered 0001, 0002...: one above it was
# made by a newer Hive. tests/unit/test_schema_revision.py holds it equal to Alembic's head,
# so a new migration that forgets to bump it fails there (and reading it costs no Alembic
# import in every worker).
SCHEMA_REVISION = "0021"


def _state(conn: Connection) -> tuple[bool, str | None]:
    """(Hive's tables are there, the database's migration revision or None)."""
    row = conn.execute(_TABLES).one()
    revision = conn.execute(_REVISION).scalar() if row[1] else None
    return bool(row[0]), revision


def check_migrated() -> None:
    """PostgreSQL answers at once and holds this Hive's schema: its tables, at the newest
    migration this Hive has. A database at a later revision (a newer Hive migrated it) is
    let be: migrations add, and older code reads what it knows.

    Raises:
        ServiceUnavailable: PostgreSQL cannot be reached (not retried).
        SettingsError: libpq refuses ``HIVE_DATABASE_URL``.
        DatabaseNotMigrated: no Hive tables, or an older schema (run ``hive db upgrade``).
    """
    tables, revision = in_transaction(_state, retry_s=0)
    database = get_settings().database.name
    if not tables:
        raise DatabaseNotMigrated(database)
    if revision is not None and revision < SCHEMA_REVISION:
        raise DatabaseNotMigrated(
            database, f"is at schema revision {revision}, and this Hive needs {SCHEMA_REVISION}"
        )
