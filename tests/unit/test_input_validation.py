"""Run input validation at the edge: nothing fetched, validators cached by content and bounded,
input nested too deep or too large refused naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hive.agents.base import AgentOptions
from hive.errors import InputError
from hive.pipelines import Pipeline, StepSpec, validate_run_input
from hive.pipelines import inputs as inputs_module
from hive.settings import PipelineSettings, Settings

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string"}, "extra": {}},
}


def pipeline_with(schema: dict[str, Any]) -> Pipeline:
    # Built by hand, as no loader would let such a schema through.
    step = StepSpec(id="a", agent="echo", input={"text": "$input.text"}, options=AgentOptions())
    return Pipeline(name="demo", version=1, input_schema=schema, steps=[step], source="x.yaml")


def limits(max_bytes: int = 1_000_000, max_depth: int = 64) -> Settings:
    return Settings(
        pipelines=PipelineSettings(max_input_bytes=max_bytes, max_input_depth=max_depth)
    )


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def test_validation_never_reads_a_file_a_dynamic_ref_names(tmp_path: Path) -> None:
    # Were the file read, "x" would be refused as not an integer.
    target = tmp_path / "integer.json"
    target.write_text('{"type": "integer"}')
    schema = {"type": "object", "properties": {"text": {"$dynamicRef": target.as_uri()}}}

    with pytest.raises(InputError) as raised:
        validate_run_input(pipeline_with(schema), {"text": "x"}, limits())

    assert raised.value.problems == [
        f"input_schema: {target.as_uri()!r} cannot be resolved (other schemas are never fetched)"
    ]


def test_validators_are_cached_by_schema_content_not_by_object() -> None:
    inputs_module._validators.clear()
    for _ in range(50):  # a Client() each: its own copy of every pipeline
        validate_run_input(pipeline_with(copy.deepcopy(SCHEMA)), {"text": "hi"}, limits())

    assert len(inputs_module._validators) == 1


def test_validator_cache_is_bounded() -> None:
    inputs_module._validators.clear()
    for n in range(inputs_module._VALIDATORS_KEPT + 30):
        schema = {**SCHEMA, "description": f"schema {n}"}
        validate_run_input(pipeline_with(schema), {"text": "hi"}, limits())

    assert len(inputs_module._validators) == inputs_module._VALIDATORS_KEPT


def test_a_changed_schema_is_not_validated_with_the_old_one() -> None:
    validate_run_input(pipeline_with(SCHEMA), {"text": "hi"}, limits())
    stricter = copy.deepcopy(SCHEMA)
    stricter["properties"]["text"]["maxLength"] = 1

    with pytest.raises(InputError, match="is too long"):
        validate_run_input(pipeline_with(stricter), {"text": "hi"}, limits())


def test_input_nested_500_levels_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError) as raised:
        validate_run_input(pipeline_with(SCHEMA), {"text": "x", "extra": nested(500)}, limits())

    assert raised.value.problems == [
        "input.extra.a.a.a.a.<58 more>.a: nested deeper than 64 levels (HIVE_MAX_INPUT_DEPTH)"
    ]


def test_input_nested_past_the_recursion_limit_is_refused_not_crashed() -> None:
    with pytest.raises(InputError, match="HIVE_MAX_INPUT_DEPTH"):
        validate_run_input(pipeline_with(SCHEMA), {"text": "x", "extra": nested(100_000)}, limits())


def test_input_at_the_depth_limit_is_accepted() -> None:
    # The object itself is one level: "extra" may hold 63 more.
    validate_run_input(pipeline_with(SCHEMA), {"text": "x", "extra": nested(63)}, limits())
    with pytest.raises(InputError):
        validate_run_input(pipeline_with(SCHEMA), {"text": "x", "extra": nested(64)}, limits())


def test_input_over_the_byte_limit_is_refused_naming_its_largest_field() -> None:
    with pytest.raises(InputError) as raised:
        validate_run_input(pipeline_with(SCHEMA), {"text": "x" * 2000}, limits(max_bytes=1000))

    message = str(raised.value)
    assert "input: 2,011 bytes of JSON (input.text alone 2,002)" in message
    assert "at most 1,000 (HIVE_MAX_INPUT_BYTES)" in message


def test_the_same_schema_object_finds_its_validator_without_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = pipeline_with(copy.deepcopy(SCHEMA))
    validate_run_input(pipeline, {"text": "hi"}, limits())
    hashed: list[object] = []
    fingerprint = inputs_module._fingerprint
    monkeypatch.setattr(
        inputs_module, "_fingerprint", lambda schema: hashed.append(schema) or fingerprint(schema)
    )

    for _ in range(3):  # a catalog's pipeline, submit after submit
        validate_run_input(pipeline, {"text": "hi"}, limits())
    with pytest.raises(InputError, match="is not of type"):
        validate_run_input(pipeline, {"text": 5}, limits())
    validate_run_input(pipeline_with(copy.deepcopy(SCHEMA)), {"text": "hi"}, limits())

    assert len(hashed) == 1  # only the other object's, once
