"""Server errors that escaped the library, as the HiveError that names their setting.

The last translation at the edge of the service layer: Redis here, PostgreSQL through
:func:`hive.db.errors.database_error` (the one every database call already uses). The CLI
prints it as one line, the HTTP API will answer with it.
"""

from __future__ import annotations

from hive.db.errors import database_error
from hive.errors import HiveError, ServiceUnavailable


def translate_failure(exc: Exception) -> HiveError | None:
    """``exc`` as the HiveError naming the setting at fault; None when it is not a server
    error Hive knows (a bug, to be raised as it is)."""
    # Imported here, on the way out of a failed command, not by every command that loads
    # the service layer.
    import kombu.exceptions
    import redis

    if isinstance(exc, redis.RedisError | kombu.exceptions.OperationalError):
        return ServiceUnavailable("HIVE_BROKER_URL", first_line(exc))
    # PostgreSQL's half is hive.db's one translation.
    return database_error(exc)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
