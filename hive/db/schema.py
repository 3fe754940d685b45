"""Whether the database holds Hive's tables: the readiness check of ``hive worker`` and
``hive check``."""

from __future__ import annotations

from sqlalchemy import text

from hive.db.retrying import in_transaction
from hive.errors import DatabaseNotMigrated
from hive.settings import get_settings

_MIGRATED = text("SELECT to_regclass('runs') IS NOT NULL")


def check_migrated() -> None:
    """PostgreSQL answers at once and holds Hive's tables.

    Raises:
        ServiceUnavailable: PostgreSQL cannot be reached (not retried).
        SettingsError: libpq refuses ``HIVE_DATABASE_URL``.
        DatabaseNotMigrated: no Hive tables (run ``hive db upgrade``).
    """
    if not in_transaction(lambda conn: bool(conn.execute(_MIGRATED).scalar()), retry_s=0):
        raise DatabaseNotMigrated(get_settings().database.name)
