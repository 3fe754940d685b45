"""Racers released together: threads alone reach PostgreSQL a little apart, and a race
might not happen. A transaction holding the racers' table in SHARE mode holds every
racer's write back (one that took a lock of its own waits there holding it) until all of
them wait, then lets them go together."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tests.support import db
from tests.support.processes import wait_until

T = TypeVar("T")


def released_together(table: str, racers: int, race: Callable[[int], T]) -> list[T]:
    """``race(i)`` for each of ``racers`` threads, each writing ``table``, released at once;
    their results in order."""
    from sqlalchemy import text

    from hive.db.engine import get_engine

    with get_engine().connect() as gate, ThreadPoolExecutor(racers) as pool:
        gate.execute(text(f"LOCK TABLE {table} IN SHARE MODE"))
        racing = pool.map(race, range(racers))
        wait_until(lambda: waiting_for_locks() == racers, 30, "every racer to wait for the gate")
        gate.commit()
        return list(racing)


def waiting_for_locks() -> int:
    """Backends of this database waiting for a lock (the racers: the table's, or one they
    take of their own)."""
    return int(db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                         " AND wait_event_type = 'Lock'"))  # fmt: skip
