"""What a stored JSON value may hold."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hive.jsondata import REPLACEMENT, dumps, unstorable


def test_plain_json_values_are_storable() -> None:
    value = {"a": [1, 2.5, True, None, "text", {"b": []}], "c": -0.0}
    assert unstorable(value, "input") == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"text": "a\x00b"}, "input.text: contains a NUL character"),
        ({"n": float("nan")}, "input.n: nan is not a JSON number"),
        ({"list": [1, float("-inf")]}, "input.list.1: -inf is not a JSON number"),
        ({"when": dt.date(2026, 1, 1)}, "input.when: a date is not a JSON value"),
        ({1: "x"}, "input: key 1 is not a string"),
        ({"a\x00": 1}, "input: a key contains a NUL character"),
        ({"text": "a\ud800"}, "input.text: contains a lone surrogate"),
    ],
    ids=["nul", "nan", "inf-in-list", "object", "int-key", "nul-in-key", "surrogate"],
)
def test_each_unstorable_part_is_named_by_its_path(value: object, problem: str) -> None:
    problems = unstorable(value, "input")
    assert len(problems) == 1
    assert problems[0].startswith(problem), problems


def test_problems_are_capped() -> None:
    assert len(unstorable(["\x00"] * 100, "input")) == 20


def test_what_is_stored_is_plain_json_when_nothing_needs_cleaning() -> None:
    value = {"a": [1, 2.5, True, None, "text \\u0000 as typed", "\U0001f600"], "b": {}}
    assert dumps(value) == json.dumps(value)


def test_nul_characters_and_lone_surrogates_are_stored_replaced() -> None:
    value = {"message": "bad \x00 byte", "k\x00": ["\ud800", ("x\x00",)], "n": 1}
    stored = json.loads(dumps(value))
    assert stored == {
        "message": f"bad {REPLACEMENT} byte",
        f"k{REPLACEMENT}": [REPLACEMENT, [f"x{REPLACEMENT}"]],
        "n": 1,
    }
    assert unstorable(stored, "error") == []
