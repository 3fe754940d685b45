"""The hand-back of an agent's result from its agent thread to the step's thread
(``hive.tasks.deadline.Outcome``): a value or an exception, a wait that times out, and
done-callbacks run once whether added before or after."""

from __future__ import annotations

import threading

import pytest

from hive.tasks.deadline import Outcome


def test_the_waiting_thread_gets_the_value_the_agent_thread_sets() -> None:
    outcome: Outcome[int] = Outcome()
    threading.Thread(target=outcome.set_result, args=(42,)).start()

    assert outcome.result(timeout=10) == 42
    assert outcome.done()
    assert outcome.result(timeout=0) == 42, "done for good"


def test_the_agents_exception_is_raised_in_the_waiting_thread() -> None:
    outcome: Outcome[int] = Outcome()
    outcome.set_exception(ValueError("bad input"))

    with pytest.raises(ValueError, match="bad input"):
        outcome.result(timeout=1)


def test_a_wait_that_ends_before_the_result_raises_timeout_and_can_wait_again() -> None:
    outcome: Outcome[str] = Outcome()

    with pytest.raises(TimeoutError):
        outcome.result(timeout=0.01)
    assert not outcome.done()
    outcome.set_result("late")
    assert outcome.result(timeout=1) == "late"


def test_done_callbacks_run_once_added_before_or_after_completion() -> None:
    outcome: Outcome[None] = Outcome()
    seen: list[str] = []
    outcome.add_done_callback(lambda _: seen.append("before"))
    assert seen == []

    outcome.set_result(None)
    outcome.add_done_callback(lambda _: seen.append("after"))

    assert seen == ["before", "after"]
