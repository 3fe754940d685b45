"""The log context: ids copied into records by the handler's filter, kept apart per thread,
shown in JSON and compactly in text; trace ids in the W3C format."""

from __future__ import annotations

import json
import logging
import threading

from hive.logs import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    is_trace_id,
    log_context,
    new_trace_id,
)


def _record(message: str = "hello", **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("lib.client", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    ContextFilter().filter(record)
    return record


def test_a_record_written_inside_a_context_carries_its_ids_and_none_after() -> None:
    with log_context(run_id="r1", step_id="s1", attempt=2, tenant=None):
        inside = json.loads(JsonFormatter().format(_record()))
    outside = json.loads(JsonFormatter().format(_record()))

    assert {k: inside.get(k) for k in ("run_id", "step_id", "attempt")} == {
        "run_id": "r1",
        "step_id": "s1",
        "attempt": 2,
    }
    assert "tenant" not in inside  # None is left out
    assert "run_id" not in outside


def test_nested_contexts_add_to_each_other_and_a_records_own_extra_wins() -> None:
    with log_context(run_id="r1"), log_context(step_id="s1"):
        record = _record(run_id="mine")

    assert (record.run_id, record.step_id) == ("mine", "s1")


def test_threads_keep_their_own_ids() -> None:
    seen: dict[str, str] = {}
    ready = threading.Barrier(2)

    def step(name: str) -> None:
        with log_context(step_id=name):
            ready.wait(timeout=10)  # both contexts are set at once
            seen[name] = _record().step_id

    threads = [threading.Thread(target=step, args=(n,)) for n in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert seen == {"left": "left", "right": "right"}


def test_the_text_format_ends_with_the_ids_compactly() -> None:
    ids = {"run_id": "r1", "step_id": "s1", "attempt": 1, "agent": "echo", "task_id": "t1"}
    with log_context(**ids, trace_id="ab" * 16):
        line = TextFormatter().format(_record())

    assert line.endswith(f"lib.client: hello [run=r1 step=s1#1 agent=echo trace={'ab' * 16}]")


def test_a_text_record_outside_any_context_has_no_brackets() -> None:
    assert TextFormatter().format(_record()).endswith("lib.client: hello")


def test_new_trace_ids_are_w3c_trace_ids_and_differ() -> None:
    ids = {new_trace_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(is_trace_id(i) for i in ids)
    assert not is_trace_id("0" * 32)
    assert not is_trace_id("AB" * 16)
    assert not is_trace_id("ab" * 15)
