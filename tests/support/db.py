"""Reading the system of record in tests."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import text

from hive.db.engine import get_engine
from hive.db.models import Base
from tests.support import services

if TYPE_CHECKING:
    from hive.pipelines import StepPlan

AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS test_success_audit (
    run_id uuid NOT NULL, step_id text NOT NULL, attempt int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION test_audit_success() RETURNS trigger AS $$
BEGIN
    INSERT INTO test_success_audit (run_id, step_id, attempt)
    VALUES (NEW.run_id, NEW.step_id, NEW.attempt);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS test_success_audit ON step_runs;
CREATE TRIGGER test_success_audit AFTER UPDATE OF status ON step_runs
    FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status IS DISTINCT FROM 'succeeded')
    EXECUTE FUNCTION test_audit_success();
TRUNCATE test_success_audit;
"""


def rows(sql: str, **params: Any) -> list[Any]:
    with get_engine().connect() as conn:
        return list(conn.execute(text(sql), params))


def scalar(sql: str, **params: Any) -> Any:
    with get_engine().connect() as conn:
        return conn.execute(text(sql), params).scalar()


def install_success_audit() -> None:
    """Every transition of a step into ``succeeded`` leaves a row: a second success of the
    same step, however it came about, shows as a second row."""
    with get_engine().begin() as conn:
        conn.exec_driver_sql(AUDIT_DDL)


def duplicate_successes() -> int:
    return int(
        scalar(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM test_success_audit"
            " GROUP BY run_id, step_id) t"
        )
    )


def run_status(run_id: Any) -> str:
    return str(scalar("SELECT status FROM runs WHERE id = :id", id=str(run_id)))


def steps_of(run_id: Any) -> dict[str, Any]:
    return {
        r.step_id: r for r in rows("SELECT * FROM step_runs WHERE run_id = :id", id=str(run_id))
    }


def attempts_of(run_id: Any, step_id: str) -> list[Any]:
    return rows(
        "SELECT * FROM step_attempts WHERE run_id = :id AND step_id = :step ORDER BY attempt",
        id=str(run_id),
        step=step_id,
    )


def store_run(
    pipeline: str,
    run_input: Any,
    *,
    run_id: uuid.UUID | None = None,
    plan: Sequence[StepPlan] | None = None,
    sent: Collection[str] = (),
) -> uuid.UUID:
    """Insert a run of ``pipeline`` (its steps ``plan``, default as planned) straight into
    the system of record, as a submit's statement does, publishing nothing: the ``sent``
    steps are marked sent, the others left for a dispatcher to find. Returns its id."""
    from hive import service
    from hive.db import runs as run_store
    from hive.db.retrying import on_direct_cursor
    from hive.pipelines import output_spec, plan_steps
    from hive.settings import get_settings

    spec = service.get_pipeline(get_settings(), service.OPERATOR, pipeline)
    run_id = run_id or uuid.uuid4()
    steps = plan_steps(spec) if plan is None else plan
    on_direct_cursor(
        lambda cursor: run_store.insert_run(
            cursor,
            run_id=run_id,
            pipeline=spec.name,
            pipeline_version=spec.version,
            tenant=None,
            priority="normal",
            run_input=run_input,
            output_spec=output_spec(spec),
            steps=steps,
            sent=sent,
        )
    )
    return run_id


def execute(sql: str, **params: Any) -> None:
    with get_engine().begin() as conn:
        conn.execute(text(sql), params)


def empty_farm(client: redis.Redis) -> None:
    """Empty every table of the farm's schema, and the tests' Redis db (``client``). Every
    table, not a list kept by hand: a table left out (the service registry was) carries one
    test's rows into whichever test its process runs next."""
    execute(f"TRUNCATE {', '.join(table.name for table in Base.metadata.sorted_tables)}")
    owner = client.get(services.OWNER_KEY)
    # One MULTI: between a FLUSHDB and the owner's key set again apart, the db is empty, and a
    # session starting then claims it; its workers then take this session's messages.
    with client.pipeline(transaction=True) as emptying:
        emptying.flushdb()
        if owner:
            emptying.set(services.OWNER_KEY, owner, ex=3600)
        emptying.execute()
