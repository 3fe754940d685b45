"""Bounds on what enters the farm (hive.pipelines.bounds); no servers."""

from __future__ import annotations

from typing import Any

import pytest

from hive.db.models import dead_letters, events, runs, step_attempts, step_runs
from hive.errors import InvalidAgentOutput, InvalidArgument, PermanentError
from hive.pipelines.bounds import (
    AGENT_NAME_MAX_CHARS,
    IDEMPOTENCY_KEY_MAX_CHARS,
    PIPELINE_NAME_MAX_CHARS,
    STEP_ID_MAX_CHARS,
    TENANT_MAX_CHARS,
    check_output_bounds,
    check_submission,
    json_bound_problems,
)
from hive.settings import PipelineSettings, Settings

LIMITS = Settings(pipelines=PipelineSettings(max_input_bytes=1000, max_input_depth=4))


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_the_length_limits_are_the_database_columns_widths() -> None:
    assert runs.c.tenant.type.length == TENANT_MAX_CHARS
    assert runs.c.idempotency_key.type.length == IDEMPOTENCY_KEY_MAX_CHARS
    assert {runs.c.pipeline.type.length, dead_letters.c.pipeline.type.length} == {
        PIPELINE_NAME_MAX_CHARS
    }
    step_id_columns = [
        step_runs.c.step_id, step_runs.c.chain_next, runs.c.failed_step, dead_letters.c.step_id,
        step_attempts.c.step_id, events.c.step_id,
    ]  # fmt: skip
    assert {column.type.length for column in step_id_columns} == {STEP_ID_MAX_CHARS}
    assert {step_runs.c.agent.type.length, dead_letters.c.agent.type.length} == {
        AGENT_NAME_MAX_CHARS
    }


@pytest.mark.parametrize(
    ("value", "depth_ok"),
    [(1, True), ([], True), (nested(4), True), (nested(5), False), ({"a": {"b": nested(2)}}, True)],
)
def test_depth_counts_nested_objects_and_arrays(value: Any, depth_ok: bool) -> None:
    assert (json_bound_problems(value, "input", LIMITS) == []) == depth_ok


def test_the_path_named_is_the_first_container_too_deep() -> None:
    value = {"ok": 1, "list": [0, {"deep": [[1]]}]}
    assert json_bound_problems(value, "input", LIMITS) == [
        "input.list.1.deep.0: nested deeper than 4 levels (HIVE_MAX_INPUT_DEPTH)"
    ]


def test_size_counts_compact_utf8_json() -> None:
    # 2 quotes + 499 two-byte characters = 1000 bytes: at the limit, not over it.
    assert json_bound_problems("é" * 499, "output", LIMITS) == []
    assert json_bound_problems("é" * 500, "output", LIMITS) == [
        "output: 1,002 bytes of JSON; at most 1,000 (HIVE_MAX_INPUT_BYTES)"
    ]


def test_values_json_cannot_hold_are_measured_not_refused_here() -> None:
    # hive.jsondata reports them, by field; measuring them must not raise.
    assert json_bound_problems({"x": float("nan"), 1: object(), (1, 2): "t"}, "input", LIMITS) == []


def test_output_out_of_bounds_is_a_permanent_failure_naming_the_field() -> None:
    with pytest.raises(InvalidAgentOutput) as raised:
        check_output_bounds({"merged": {"a": nested(4)}}, LIMITS)

    assert isinstance(raised.value, PermanentError)
    assert str(raised.value) == (
        "output.merged.a.0.0: nested deeper than 4 levels (HIVE_MAX_INPUT_DEPTH)"
    )


def test_output_in_bounds_passes() -> None:
    check_output_bounds({"text": "fine"}, LIMITS)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"tenant": "t" * 201}, "tenant is 201 characters long; at most 200"),
        ({"idempotency_key": "k" * 500}, "idempotency_key is 500 characters long; at most 200"),
        ({"tenant": "a\x00b"}, "tenant contains a NUL character"),
        ({"tenant": 7}, "tenant must be a string, not int"),
        ({"tenant": ""}, "tenant must be a non-empty name"),
        ({"tenant": " "}, "tenant ' ' begins or ends with white space"),
        ({"tenant": "acme\n"}, "tenant 'acme\\n' begins or ends with white space"),
        ({"deadline": float("nan")}, "deadline must be a positive number of seconds"),
        ({"deadline": float("inf")}, "not inf"),
        ({"deadline": -1.0}, "not -1.0"),
        ({"deadline": 1e300}, "at most 315360000"),
        ({"deadline": "10"}, "deadline must be a number of seconds, not str"),
        ({"deadline": True}, "not bool"),
    ],
    ids=[
        "long-tenant",
        "long-key",
        "nul-tenant",
        "int-tenant",
        "empty-tenant",
        "blank-tenant",
        "tenant-with-newline",
        "nan",
        "inf",
        "negative",
        "beyond-timestamps",
        "string-deadline",
        "bool-deadline",
    ],
)
def test_submit_arguments_the_database_cannot_take_are_refused_by_name(
    arguments: dict[str, Any], problem: str
) -> None:
    given = {"tenant": None, "idempotency_key": None, "deadline": None, **arguments}
    with pytest.raises(InvalidArgument) as raised:
        check_submission(**given)

    assert problem in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_every_bad_argument_is_named_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_submission("t" * 300, "k" * 300, float("nan"))

    assert [problem.split()[0] for problem in raised.value.problems] == [
        "tenant",
        "idempotency_key",
        "deadline",
    ]


def test_arguments_within_bounds_pass() -> None:
    check_submission("t" * 200, "k" * 200, 0.001)
    check_submission(None, None, None)
    check_submission("acme", "order-1", 3600)
