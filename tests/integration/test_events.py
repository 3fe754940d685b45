"""Events that stand for one happening are written once, however often it is recorded."""

from __future__ import annotations

import pytest

from hive import Client
from hive.db import events
from hive.db.retrying import in_transaction
from tests.support import db

pytestmark = pytest.mark.timeout(60)


def test_a_late_finish_recorded_twice_for_one_attempt_is_one_event(clean_state: None) -> None:
    # As when the soft time limit strikes after the first recording committed and the step
    # task records the outcome again.
    run = Client().submit("echo-one", {"text": "x"})

    first = in_transaction(lambda c: events.record_late_finish(c, run.id, "echo", 1))
    again = in_transaction(lambda c: events.record_late_finish(c, run.id, "echo", 1))
    other = in_transaction(lambda c: events.record_late_finish(c, run.id, "echo", 2))

    assert (first, again, other) == (True, False, True)
    rows = db.rows(
        "SELECT detail->>'attempt' AS attempt FROM events WHERE kind = 'late_finish'"
        " AND run_id = :id ORDER BY id",
        id=str(run.id),
    )
    assert [r.attempt for r in rows] == ["1", "2"]
