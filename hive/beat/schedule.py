"""Beat's schedule, from settings. Pure: only ``hive beat`` attaches it to the Celery app,
so a producer or a worker importing the app imports neither beat nor its Redis lock."""

from __future__ import annotations

from typing import Any

from hive import keys
from hive.settings import Settings


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Each entry expires after its interval, so a backlog after an outage does not pile up."""
    return {
        "recover-stalled-runs": {
            "task": keys.RECOVER_TASK,
            "schedule": settings.recovery.interval_s,
            "options": {
                "queue": keys.MAINTENANCE_QUEUE,
                "expires": settings.recovery.interval_s,
                "priority": 0,  # served before any step, so a busy farm still recovers
            },
        },
        "purge-retention": {
            "task": keys.PURGE_TASK,
            "schedule": settings.retention.purge_interval_s,
            "options": {
                "queue": keys.MAINTENANCE_QUEUE,
                "expires": settings.retention.purge_interval_s,
            },
        },
        "health-sweep": {
            "task": keys.HEALTH_TASK,
            "schedule": settings.health.interval_s,
            "options": {
                "queue": keys.MAINTENANCE_QUEUE,
                "expires": settings.health.interval_s,
                "priority": 0,  # a status that lags is a pick() of a dead instance
            },
        },
        "cleanup-services": {
            "task": keys.CLEANUP_TASK,
            "schedule": settings.health.cleanup_interval_s,
            "options": {
                "queue": keys.MAINTENANCE_QUEUE,
                "expires": settings.health.cleanup_interval_s,
            },
        },
        "expire-approvals": {
            "task": keys.APPROVALS_TASK,
            "schedule": settings.approvals.interval_s,
            "options": {
                "queue": keys.MAINTENANCE_QUEUE,
                "expires": settings.approvals.interval_s,
            },
        },
    }


def maintenance_intervals(settings: Settings) -> dict[str, float]:
    """Each maintenance task's interval, under the name its ``maintenance`` events carry
    (hive/beat/tasks.py): the exporter reports them, so an alert can say "three intervals"."""
    return {
        "recover": settings.recovery.interval_s,
        "purge": settings.retention.purge_interval_s,
        "health": settings.health.interval_s,
        "cleanup": settings.health.cleanup_interval_s,
        "approvals": settings.approvals.interval_s,
    }
