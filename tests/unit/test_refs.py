"""References: parsing and resolving ``$input`` / ``$steps.<id>`` in templates."""

from __future__ import annotations

from typing import Any

import pytest

from hive.errors import HiveError
from hive.pipelines.refs import (
    MalformedReference,
    Reference,
    UnresolvedReference,
    parse_reference,
    referenced_steps,
    resolve,
)

RUN_INPUT = {"text": "hello", "a": {"b": 42}, "tags": ["x", "y"]}
OUTPUTS: dict[str, Any] = {
    "x": {"text": "HELLO", "list": [{"name": "first"}, "second"], "count": 2},
    "y": "plain",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$input", Reference("input", None, ())),
        ("$input.a.b", Reference("input", None, ("a", "b"))),
        ("$steps.x", Reference("steps", "x", ())),
        ("$steps.x.list.0", Reference("steps", "x", ("list", "0"))),
    ],
)
def test_parse_reference_reads_root_step_and_path(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("literal", ["hello", "$$5", "$$input.text", "a $input", "", 5, None, []])
def test_parse_reference_returns_none_for_literals(literal: object) -> None:
    assert parse_reference(literal) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("$foo.bar", "must start with $input or $steps"),
        ("$", "must start with $input or $steps"),
        ("$inputs.text", "not $inputs"),
        ("$steps", "must be followed by a step id"),
        ("$steps.", "empty path segment"),
        ("$input..a", "empty path segment"),
        ("$steps.x.", "empty path segment"),
    ],
)
def test_parse_reference_rejects_malformed_references(text: str, problem: str) -> None:
    with pytest.raises(MalformedReference) as caught:
        parse_reference(text)
    assert problem in str(caught.value)
    assert repr(text) in str(caught.value)


def test_resolve_substitutes_the_whole_run_input() -> None:
    assert resolve("$input", RUN_INPUT, OUTPUTS) == RUN_INPUT


def test_resolve_follows_a_path_into_the_run_input() -> None:
    assert resolve("$input.a.b", RUN_INPUT, OUTPUTS) == 42


def test_resolve_substitutes_a_whole_step_output() -> None:
    assert resolve("$steps.x", RUN_INPUT, OUTPUTS) == OUTPUTS["x"]
    assert resolve("$steps.y", RUN_INPUT, OUTPUTS) == "plain"


def test_resolve_indexes_lists_with_integer_segments() -> None:
    assert resolve("$steps.x.list.0", RUN_INPUT, OUTPUTS) == {"name": "first"}
    assert resolve("$steps.x.list.0.name", RUN_INPUT, OUTPUTS) == "first"
    assert resolve("$input.tags.1", RUN_INPUT, OUTPUTS) == "y"


def test_resolve_turns_double_dollar_into_a_literal_dollar() -> None:
    assert resolve("$$5", RUN_INPUT, OUTPUTS) == "$5"
    assert resolve("$$input.text", RUN_INPUT, OUTPUTS) == "$input.text"
    assert resolve({"price": ["$$$10"]}, RUN_INPUT, OUTPUTS) == {"price": ["$$10"]}


def test_resolve_substitutes_references_nested_in_dicts_and_lists() -> None:
    template = {
        "text": "$steps.x.text",
        "top": 10,
        "nested": {"items": ["$input.text", {"deep": "$steps.x.count"}, "literal"], "n": None},
        "flag": True,
    }
    assert resolve(template, RUN_INPUT, OUTPUTS) == {
        "text": "HELLO",
        "top": 10,
        "nested": {"items": ["hello", {"deep": 2}, "literal"], "n": None},
        "flag": True,
    }


def test_resolve_leaves_strings_with_a_dollar_inside_alone() -> None:
    assert resolve("costs $5", RUN_INPUT, OUTPUTS) == "costs $5"


def test_resolve_does_not_share_mutable_parts_with_the_outputs() -> None:
    resolved = resolve({"x": "$steps.x"}, RUN_INPUT, OUTPUTS)
    resolved["x"]["list"].append("added")
    assert OUTPUTS["x"]["list"] == [{"name": "first"}, "second"]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("$input.missing", "$input has no key 'missing'"),
        ("$input.a.b.c", "$input.a.b is int, not a mapping or list; cannot take 'c'"),
        ("$steps.x.list.5", "$steps.x.list has no index 5 (it has 2 items)"),
        ("$steps.x.list.first", "$steps.x.list is a list; 'first' is not an index"),
        ("$steps.z.text", "step 'z' has no output"),
    ],
)
def test_resolve_raises_unresolved_reference_naming_the_reference(
    template: str, problem: str
) -> None:
    with pytest.raises(UnresolvedReference) as caught:
        resolve({"deep": [template]}, RUN_INPUT, OUTPUTS)
    assert isinstance(caught.value, HiveError)
    assert str(caught.value) == f"cannot resolve {template}: {problem}"


def test_unresolved_reference_keeps_json_able_arguments() -> None:
    error = UnresolvedReference("$input.a", "no key")
    assert error.args == ("$input.a", "no key")


def test_referenced_steps_finds_step_ids_at_any_depth() -> None:
    template = {"a": "$steps.one.text", "b": [{"c": "$steps.two"}, "$input.x", "$$steps.three"]}
    assert referenced_steps(template) == {"one", "two"}


def test_referenced_steps_rejects_malformed_references() -> None:
    with pytest.raises(MalformedReference):
        referenced_steps({"a": ["$nope"]})
