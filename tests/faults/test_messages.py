"""Duplicated and re-ordered task messages are harmless: each step's agent succeeds once."""

from __future__ import annotations

import pytest

from hive import Client, keys
from hive.tasks.app import app
from tests.support import db
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


def _send(run_id: str, step_id: str, attempt: int) -> None:
    app.send_task(keys.RUN_STEP_TASK, args=(run_id, step_id, attempt), queue=keys.DEFAULT_QUEUE)


def test_duplicated_and_reordered_messages_record_each_success_once(
    start_worker, success_audit
) -> None:
    client = Client()
    # No worker yet: the messages pile up in whatever order we send them.
    runs = [client.submit("fault-chain3", {"text": f"t{i}"}) for i in range(5)]
    for run in runs:
        rid = str(run.id)
        for step_id in ("c", "b", "a"):  # dependents before their needs
            _send(rid, step_id, 1)
        for _ in range(3):  # the same message three more times
            _send(rid, "a", 1)
        _send(rid, "a", 2)  # a message for an attempt that does not exist yet

    start_worker("--concurrency", "2")
    for i, run in enumerate(runs):
        assert run.wait(timeout=60) == {"c": {"text": f"t{i}"}}
        steps = db.steps_of(run.id)
        assert {s: (r.status, r.attempt) for s, r in steps.items()} == {
            "a": ("succeeded", 1),
            "b": ("succeeded", 1),
            "c": ("succeeded", 1),
        }
    assert db.duplicate_successes() == 0
    assert db.scalar("SELECT count(*) FROM test_success_audit") == 15


def test_a_late_message_after_the_run_finished_changes_nothing(start_worker) -> None:
    start_worker("--concurrency", "1")
    run = Client().submit("fault-chain3", {"text": "done"})
    run.wait(timeout=30)
    before = db.steps_of(run.id)
    _send(str(run.id), "b", 1)
    _send(str(run.id), "b", 2)
    probe = Client().submit("fault-chain3", {"text": "probe"})  # FIFO: ours are handled first
    probe.wait(timeout=30)
    after = db.steps_of(run.id)
    assert {s: (r.attempt, r.finished_at) for s, r in after.items()} == {
        s: (r.attempt, r.finished_at) for s, r in before.items()
    }
    wait_until(lambda: db.run_status(run.id) == "succeeded", 5, "the run to stay succeeded")
