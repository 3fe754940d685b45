"""PostgreSQL: the system of record for runs, steps, attempts and events."""

from hive.db.engine import dispose_engine, get_engine
from hive.db.models import Base, Event, Run, StepAttempt, StepRun
from hive.statuses import ACTIVE_RUN_STATUSES, FINAL_RUN_STATUSES, RunStatus, StepStatus

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "FINAL_RUN_STATUSES",
    "Base",
    "Event",
    "Run",
    "RunStatus",
    "StepAttempt",
    "StepRun",
    "StepStatus",
    "dispose_engine",
    "get_engine",
]
