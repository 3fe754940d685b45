"""The cap on a tenant's runs in flight holds against submits racing each other: the count
and the insert are one statement under a lock of the tenant's. Real PostgreSQL and Redis;
the racers are threads, each on its own connection, released together."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hive import service
from hive.errors import TooManyRunsInFlight
from hive.service import Caller, Role
from hive.settings import get_settings
from tests.support import db
from tests.support.racing import released_together

# The autocommit pool's most connections (2 + 10 overflow): every racer holds one at once.
RACERS = 12


def _race(caller: Caller, cap: int, key: str | None = None) -> list[str]:
    """Submit RACERS runs at once (:func:`released_together`); each one's run id, or
    "refused"."""

    def submit(i: int) -> str:
        try:
            submitted = service.submit(
                # With one key, one request repeated: its racers ask for the same run.
                get_settings(), caller, "echo-one", {"text": f"racer {i}" if key is None else key},
                idempotency_key=key, max_in_flight=cap,
            )  # fmt: skip
        except TooManyRunsInFlight:
            return "refused"
        return str(submitted.run_id)

    return released_together("runs", RACERS, submit)


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


def _queue_runs(tenant: str | None, count: int) -> None:
    db.execute(
        "INSERT INTO runs (id, pipeline, pipeline_version, tenant, priority, input, output_spec,"
        " status, steps_remaining) SELECT gen_random_uuid(), 'echo-one', 1, :tenant, 'normal',"
        " '{}', '{}', 'queued', 1 FROM generate_series(1, :count)",
        tenant=tenant,
        count=count,
    )


@pytest.mark.parametrize("tenant", ["acme", None], ids=["a tenant", "runs of no tenant"])
def test_a_capped_submit_reads_its_own_tenants_unfinished_runs_alone(
    clean_state: None, tenant: str | None
) -> None:
    """Another tenant's backlog costs a capped submit nothing: the count walks the tenant's
    own unfinished runs (an index scan that filters out no row), never the farm's."""
    from sqlalchemy import text

    from hive.db.engine import get_engine
    from hive.db.runs import _INSERTS

    _queue_runs("globex", 300)
    _queue_runs(tenant, 2)
    statement = _INSERTS[True, False].statement.text  # the capped insert, unaudited
    params = {
        "run_id": uuid.uuid4(), "pipeline": "echo-one", "pipeline_version": 1,
        "tenant": tenant, "priority": "normal", "input": "{}", "output_spec": "{}",
        "steps_remaining": 1, "idempotency_key": None, "deadline_s": None, "steps": "[]",
        "publish_grace": 30.0, "trace_id": None, "budget_usd": None, "cap": 10,
    }  # fmt: skip
    with get_engine().connect() as conn:
        conn.execute(text("ANALYZE runs"))
        # Tables this small would be read whole whatever the indexes: ask for an index.
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}"), params).scalar()
        conn.rollback()

    scans = [node for node in _nodes(plan[0]["Plan"]) if node.get("Relation Name") == "runs"]
    counted = [node for node in scans if node["Node Type"] != "ModifyTable"]
    assert counted, plan
    for node in counted:
        assert node.get("Rows Removed by Filter", 0) == 0, node
        assert node["Actual Rows"] <= 2, node


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]
