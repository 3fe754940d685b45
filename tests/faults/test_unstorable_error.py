"""An agent error that ``jsonb`` cannot hold as it is (a NUL character) is stored cleaned,
and the step fails like any other failure instead of staying ``running``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hive import Client, RunFailed
from hive.jsondata import REPLACEMENT
from tests.support import db
from tests.support.processes import HiveProcess


@pytest.mark.timeout(120)
def test_an_error_message_with_a_nul_character_is_stored_cleaned_and_fails_the_step(
    start_worker: Callable[..., HiveProcess],
) -> None:
    worker = start_worker("--concurrency", "1")

    run = Client().submit("fault-nul", {})
    with pytest.raises(RunFailed):
        run.wait(timeout=30)

    view = run.view()
    steps = {s.step_id: s for s in view.steps}
    assert {k: s.status for k, s in steps.items()} == {"garbled": "failed", "after": "skipped"}
    error = steps["garbled"].error
    assert error is not None
    assert error["type"] == "PermanentError"
    assert error["message"] == f"bad byte {REPLACEMENT} in the reply"
    assert f"PermanentError: bad byte {REPLACEMENT} in the reply" in error["traceback"]
    assert view.error is not None
    assert view.error["message"] == error["message"]
    [attempt] = db.attempts_of(view.id, "garbled")
    assert (attempt.outcome, attempt.error["message"]) == ("failed", error["message"])
    dead = db.rows("SELECT error FROM dead_letters WHERE run_id = :id", id=str(view.id))
    assert [d.error["message"] for d in dead] == [error["message"]]
    assert "UntranslatableCharacter" not in worker.log()
