"""Server errors that escaped the library, as the HiveError that names their setting.

The one translation at the edge of the service layer: the CLI prints it as one line, the
HTTP API will answer with it.
"""

from __future__ import annotations

import kombu.exceptions
import psycopg2
import redis
from psycopg2 import errorcodes
from sqlalchemy.exc import DBAPIError

from hive.errors import DatabaseNotMigrated, HiveError, ServiceUnavailable, SettingsError
from hive.settings import get_settings


def translate_failure(exc: Exception) -> HiveError | None:
    """``exc`` as the HiveError naming the setting at fault; None when it is not a server
    error Hive knows (a bug, to be raised as it is)."""
    if isinstance(exc, redis.RedisError | kombu.exceptions.OperationalError):
        return ServiceUnavailable("HIVE_BROKER_URL", _first_line(exc))
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, psycopg2.Error):
        return None
    if orig.pgcode == errorcodes.UNDEFINED_TABLE:
        return DatabaseNotMigrated(get_settings().database.name)
    if isinstance(orig, psycopg2.OperationalError | psycopg2.InterfaceError):
        return ServiceUnavailable("HIVE_DATABASE_URL", _first_line(orig))
    if str(orig).startswith("invalid dsn"):
        return SettingsError("HIVE_DATABASE_URL", _first_line(orig))
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
