"""Farm-wide maintenance, the operator's alone: recovery, retention, the schema, and the
readiness of the servers."""

from __future__ import annotations

from typing import Any

from hive import preflight
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings


@operation
def recover(settings: Settings, caller: Caller) -> dict[str, Any] | None:
    """One recovery sweep now (what beat runs every ``HIVE_RECOVERY_INTERVAL_S``); its
    report, or None when another sweep holds the lock."""
    caller.require(Right.MAINTAIN)
    # Imported here: a producer (Client) loads neither beat nor its Redis lock.
    from hive.beat.tasks import recover_now

    return recover_now()


@operation
def purge(settings: Settings, caller: Caller) -> dict[str, Any] | None:
    """Delete what is older than ``HIVE_RETENTION_DAYS``; None when a purge holds the lock."""
    caller.require(Right.MAINTAIN)
    from hive.beat.tasks import purge_now

    return purge_now()


@operation
def health_sweep(settings: Settings, caller: Caller) -> dict[str, Any] | None:
    """One health sweep now (what beat runs every ``HIVE_HEALTH_INTERVAL_S``): TTLs and
    health URLs of the service registry; its report, or None when a sweep holds the lock."""
    caller.require(Right.MAINTAIN)
    from hive.beat.tasks import health_now

    return health_now()


@operation
def cleanup_services(settings: Settings, caller: Caller) -> dict[str, Any] | None:
    """Deregister the instances critical for longer than their ``deregister_after_s``
    now; None when a cleanup holds the lock."""
    caller.require(Right.MAINTAIN)
    from hive.beat.tasks import cleanup_now

    return cleanup_now()


@operation
def upgrade_schema(settings: Settings, caller: Caller) -> None:
    """Apply the database migrations (safe to run again)."""
    caller.require(Right.MAINTAIN)
    from hive.db.migrate import upgrade  # alembic: imported by this command alone

    upgrade()


@operation
def check_servers(settings: Settings) -> None:
    """Redis and PostgreSQL answer, and the database holds Hive's tables: fail now, naming
    the setting, rather than retry for ``HIVE_DB_RETRY_S``.

    Raises:
        ServiceUnavailable, DatabaseNotMigrated, SettingsError
    """
    preflight.check_broker()
    preflight.check_database()


@operation
def check_broker(settings: Settings) -> None:
    """Redis answers (raises ServiceUnavailable naming ``HIVE_BROKER_URL``)."""
    preflight.check_broker()
