"""A publish confirmation clears the grace of the mark it was made for, never a newer mark's:
a step re-sent by recovery (its first mark unconfirmed past the grace) keeps its new mark's
grace when the first publish's confirmation lands late. Real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from hive.db import marks, sweeps
from hive.db.retrying import in_transaction, on_direct_cursor
from hive.tasks.dispatch import Publication, dispatch
from tests.support import db
from tests.support.processes import wait_until
from tests.support.racing import waiting_for_locks

pytestmark = pytest.mark.timeout(60)


def _stored_run() -> uuid.UUID:
    """A run of echo-one stored with nothing marked sent, as the dispatcher then finds it."""
    return db.store_run("echo-one", {"text": "x"})


def _first_mark(run_id: uuid.UUID) -> tuple[str, Publication]:
    (step_id,) = [r.step_id for r in db.rows("SELECT step_id FROM step_runs WHERE run_id = :id",
                                             id=str(run_id))]  # fmt: skip
    first = in_transaction(lambda conn: dispatch(conn, run_id, [step_id], "normal"))
    assert first.step_ids == [step_id] and first.marked_at is not None
    # Its confirmation is late: past the grace, recovery takes the mark for a lost message.
    db.execute("UPDATE step_runs SET publish_by = now() - interval '1 second' WHERE run_id = :id",
               id=str(run_id))  # fmt: skip
    return step_id, first


def _resend(conn: Any, run_id: uuid.UUID, step_id: str) -> Publication:
    """What recovery's re-send does in its transaction: forget the overdue mark, mark again."""
    assert sweeps.unmark_for_resend(conn, run_id, [step_id], stale_s=600.0) == {step_id: 1}
    again = dispatch(conn, run_id, [step_id], "normal")
    assert again.step_ids == [step_id]
    return again


def _mark_of(run_id: uuid.UUID) -> Any:
    (row,) = db.rows("SELECT enqueued_at, publish_by FROM step_runs WHERE run_id = :id",
                     id=str(run_id))  # fmt: skip
    return row


def test_a_late_batched_confirmation_leaves_the_grace_of_the_step_marked_again_meanwhile(
    clean_state: None,
) -> None:
    """The confirmation thread's write is held at the table while recovery marks the step
    again in the holding transaction; once let go, it finds a mark it was not made for."""
    from hive.db.engine import get_engine
    from hive.tasks.confirms import Confirmations

    run_id = _stored_run()
    step_id, first = _first_mark(run_id)
    confirmations = Confirmations()
    with get_engine().connect() as gate:
        gate.execute(text("LOCK TABLE step_runs IN SHARE MODE"))
        confirmations.add(run_id, [step_id], first.marked_at)
        wait_until(lambda: waiting_for_locks() == 1, 30, "the confirmation to wait for the gate")
        again = _resend(gate, run_id, step_id)
        gate.commit()
    assert confirmations.flush(30)

    mark = _mark_of(run_id)
    assert again.marked_at is not None and mark.enqueued_at == again.marked_at
    assert mark.publish_by is not None, "the re-sent step lost its publish grace"
    # The re-send's own confirmation clears it.
    confirmations.add(run_id, [step_id], again.marked_at)
    assert confirmations.flush(30)
    assert _mark_of(run_id).publish_by is None


def test_a_late_confirmation_leaves_the_grace_of_the_step_marked_again_meanwhile(
    clean_state: None,
) -> None:
    """The same with one statement per publish (a worker's, a CLI's)."""
    run_id = _stored_run()
    step_id, first = _first_mark(run_id)
    again = in_transaction(lambda conn: _resend(conn, run_id, step_id))

    on_direct_cursor(
        lambda cursor: marks.confirm_published(cursor, run_id, [step_id], first.marked_at)
    )
    assert _mark_of(run_id).publish_by is not None, "the re-sent step lost its publish grace"
    on_direct_cursor(
        lambda cursor: marks.confirm_published(cursor, run_id, [step_id], again.marked_at)
    )
    assert _mark_of(run_id).publish_by is None


def test_a_submit_confirms_the_marks_its_insert_made(clean_state: None) -> None:
    """A new run's marks are told by the insert's now(), the run's created_at: confirmed
    whether one statement or the batching thread writes it."""
    from hive import Client
    from hive.tasks.dispatch import confirm_in_batches

    client = Client()
    runs = [client.submit("echo-one", {"text": "a"})]
    confirm_in_batches()
    try:
        runs.append(client.submit("echo-one", {"text": "b"}))
    finally:
        confirm_in_batches(False)
    rows = db.rows("SELECT enqueued_at IS NOT NULL AS sent, publish_by FROM step_runs"
                   " WHERE run_id = ANY(:ids)", ids=[r.id for r in runs])  # fmt: skip
    assert [(r.sent, r.publish_by) for r in rows] == [(True, None)] * 2
