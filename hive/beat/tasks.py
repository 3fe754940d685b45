"""Beat maintenance tasks. Each takes a Redis lock, so two beats (or an operator's
``hive maintenance`` next to a beat) never run the same maintenance at once."""

from __future__ import annotations

import logging
from typing import Any

from hive import keys
from hive.beat import lock, recovery
from hive.db import sweeps
from hive.db.retrying import in_transaction
from hive.settings import get_settings
from hive.tasks.app import app

logger = logging.getLogger(__name__)


def recover_now() -> dict[str, Any] | None:
    """One recovery sweep; None if another one is running."""
    ttl = max(get_settings().recovery_interval_s * 4, 60.0)
    report = lock.run_exclusively("recover", ttl, recovery.recover)
    return None if report is None else report.as_dict()


def purge_now() -> dict[str, Any] | None:
    """Delete what is older than ``HIVE_RETENTION_DAYS``; None if another purge is running."""
    days = get_settings().retention_days
    return lock.run_exclusively(
        "purge", 3600.0, lambda _: in_transaction(lambda c: sweeps.purge_older_than(c, days))
    )


@app.task(name=keys.RECOVER_TASK, ignore_result=True)
def recover_stalled_runs() -> dict[str, Any] | None:
    return recover_now()


@app.task(name=keys.PURGE_TASK, ignore_result=True)
def purge_retention() -> dict[str, Any] | None:
    return purge_now()


def beat_schedule() -> dict[str, Any]:
    """The schedule, from settings; each entry expires after its interval so a backlog
    after an outage does not pile up."""
    settings = get_settings()
    return {
        "recover-stalled-runs": {
            "task": keys.RECOVER_TASK,
            "schedule": settings.recovery_interval_s,
            "options": {"queue": keys.MAINTENANCE_QUEUE, "expires": settings.recovery_interval_s},
        },
        "purge-retention": {
            "task": keys.PURGE_TASK,
            "schedule": settings.purge_interval_s,
            "options": {"queue": keys.MAINTENANCE_QUEUE, "expires": settings.purge_interval_s},
        },
    }
