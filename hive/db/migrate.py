"""Apply Alembic migrations (``hive db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hive.db.errors import translated
from hive.settings import get_settings

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    url = database_url or get_settings().database.url.get_secret_value()
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str | None = None) -> None:
    """Bring the database to the newest schema; a no-op when it is already there."""
    with translated():
        command.upgrade(alembic_config(database_url), "head")
