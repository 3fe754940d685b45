"""The cap on a tenant's runs in flight holds against submits racing each other: the count
and the insert are one statement under a lock of the tenant's. Real PostgreSQL and Redis;
the racers are threads, each on its own connection, released together."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from hive import service
from hive.errors import TooManyRunsInFlight
from hive.service import Caller, Role
from hive.settings import get_settings
from tests.support import db
from tests.support.processes import wait_until

# The autocommit pool's most connections (2 + 10 overflow): every racer holds one at once.
RACERS = 12


def _race(caller: Caller, cap: int, key: str | None = None) -> list[str]:
    """Submit RACERS runs at once; each one's run id, or "refused".

    Threads alone would reach PostgreSQL a little apart, and a race might not happen: a
    transaction holding ``runs`` in SHARE mode holds every racer's insert back until all
    of them wait, then lets them go together."""
    from sqlalchemy import text

    from hive.db.engine import get_engine

    def submit(i: int) -> str:
        try:
            submitted = service.submit(
                get_settings(), caller, "echo-one", {"text": f"racer {i}"},
                idempotency_key=key, max_in_flight=cap,
            )  # fmt: skip
        except TooManyRunsInFlight:
            return "refused"
        return str(submitted.run_id)

    with get_engine().connect() as gate, ThreadPoolExecutor(RACERS) as pool:
        gate.execute(text("LOCK TABLE runs IN SHARE MODE"))
        racing = pool.map(submit, range(RACERS))
        wait_until(lambda: _waiting() == RACERS, 30, "every racer to wait for the gate")
        gate.commit()
        return list(racing)


def _waiting() -> int:
    """Backends of this database waiting for a lock (the racers: the table's or the
    tenant's)."""
    return int(db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                         " AND wait_event_type = 'Lock'"))  # fmt: skip


def _unfinished(tenant: str | None) -> int:
    where = "tenant IS NULL" if tenant is None else "tenant = :t"
    return int(db.scalar(f"SELECT count(*) FROM runs WHERE finished_at IS NULL AND {where}",
                         t=tenant))  # fmt: skip


@pytest.mark.parametrize(
    ("caller", "cap"),
    [(Caller("acme", Role.PRODUCER), 3), (service.OPERATOR, 2)],
    ids=["a tenant", "runs of no tenant"],
)
def test_racing_submits_start_exactly_as_many_runs_as_the_cap_leaves(
    clean_state: None, caller: Caller, cap: int
) -> None:
    service.submit(get_settings(), caller, "echo-one", {"text": "before"}, max_in_flight=cap)

    outcomes = _race(caller, cap)

    assert len([o for o in outcomes if o != "refused"]) == cap - 1
    assert outcomes.count("refused") == RACERS - (cap - 1)
    assert _unfinished(caller.tenant) == cap


def test_racing_repeats_of_one_idempotency_key_at_the_cap_all_get_its_one_run(
    clean_state: None,
) -> None:
    acme = Caller("acme", Role.PRODUCER)

    outcomes = _race(acme, 1, key="order-1")

    assert len(set(outcomes)) == 1 and uuid.UUID(outcomes[0])
    assert _unfinished("acme") == 1
    # The cap is the tenant's: another tenant's racers are not held by it.
    assert "refused" not in _race(Caller("globex", Role.PRODUCER), RACERS)
