"""A new run's first dispatch, decided before its rows exist, matches the dispatcher's."""

from __future__ import annotations

import uuid

import pytest

from hive import Client, service
from hive.db.retrying import in_transaction
from hive.pipelines import plan_steps
from hive.settings import get_settings
from hive.tasks.dispatch import Publication, dispatch, dispatch_new_run
from tests.support import db


def _stretches(publication: Publication) -> list[list[tuple[str, int]]]:
    return [[(s.step_id, s.attempt) for s in st] for st in publication.stretches]


@pytest.mark.parametrize("pipeline", ["doc-triage", "fault-chain3", "parallel", "fault-fan"])
def test_first_dispatch_of_a_new_run_is_what_the_dispatcher_marks_on_its_stored_rows(
    hive_env, clean_state, pipeline: str
) -> None:
    spec = service.get_pipeline(get_settings(), service.OPERATOR, pipeline)
    plan = plan_steps(spec)
    run_id = uuid.uuid4()
    decided = dispatch_new_run(run_id, plan, "normal")

    # Stored unmarked: now let the dispatcher decide from the rows.
    db.store_run(pipeline, {}, run_id=run_id, plan=plan)
    roots = [s.step_id for s in plan if not s.needs]
    marked = in_transaction(lambda conn: dispatch(conn, run_id, roots, "normal"))
    assert _stretches(decided) == _stretches(marked)
    assert decided.step_ids


def test_submit_stores_the_first_steps_marked_sent_and_confirms_their_publish(
    hive_env, clean_state
) -> None:
    run = Client().submit("doc-triage", {"text": "hello"})
    marks = db.rows(
        "SELECT step_id, enqueued_at IS NOT NULL AS sent, publish_by FROM step_runs"
        " WHERE run_id = :id ORDER BY position",
        id=run.id,
    )
    # redact is the root; keywords, summarize and sentiment need it, report needs all three.
    assert [(m.step_id, m.sent, m.publish_by) for m in marks] == [
        ("redact", True, None),
        ("keywords", False, None),
        ("summarize", False, None),
        ("sentiment", False, None),
        ("report", False, None),
    ]


def test_an_api_process_confirms_its_submits_publishes_in_batches_off_their_path(
    hive_env, clean_state
) -> None:
    """As `hive api` does while it serves: each submit's first steps are published at once;
    their marks are confirmed by one thread, many per statement, and written out when
    batching is turned off (the server stopping)."""
    from concurrent.futures import ThreadPoolExecutor

    from hive.tasks.dispatch import confirm_in_batches

    client = Client()
    confirm_in_batches()
    try:
        with ThreadPoolExecutor(8) as pool:
            runs = list(pool.map(lambda _: client.submit("doc-triage", {"text": "x"}), range(40)))
    finally:
        confirm_in_batches(False)  # waits for what is gathered
    marks = db.rows(
        "SELECT publish_by, enqueued_at IS NOT NULL AS sent FROM step_runs"
        " WHERE run_id = ANY(:ids) AND step_id = 'redact'",
        ids=[r.id for r in runs],
    )
    assert [(m.sent, m.publish_by) for m in marks] == [(True, None)] * 40

    # Off again: each publish is confirmed before its submit returns.
    run = client.submit("doc-triage", {"text": "y"})
    mark = db.rows("SELECT publish_by FROM step_runs WHERE run_id = :id AND step_id = 'redact'",
                   id=run.id)  # fmt: skip
    assert [m.publish_by for m in mark] == [None]
