"""output_schema: answers are parsed and validated, and the model is asked again with the
error, a bounded number of times."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hive.agents.builtin.llm.client import Completion
from hive.agents.builtin.llm.repair import OutputSchema, answer_with_repairs
from hive.errors import PermanentError

SCHEMA = {
    "type": "object",
    "required": ["label", "score"],
    "properties": {"label": {"enum": ["good", "bad"]}, "score": {"type": "number"}},
}
QUESTION = [{"role": "user", "content": "Rate it."}]


class Model:
    """Answers from a list, and keeps what it was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[list[dict[str, str]]] = []

    def __call__(self, messages: list[dict[str, str]]) -> Completion:
        self.asked.append(list(messages))
        return Completion(self.answers.pop(0), "stop", 10, 5)


def test_an_answer_that_fits_is_parsed_without_a_repair() -> None:
    model = Model(json.dumps({"label": "good", "score": 0.9}))

    answer = answer_with_repairs(model, QUESTION, OutputSchema(SCHEMA), max_repairs=2)

    assert answer.data == {"label": "good", "score": 0.9}
    assert answer.repairs == 0
    (asked,) = model.asked
    assert asked[0]["role"] == "system"
    assert json.dumps(SCHEMA) in asked[0]["content"]
    assert asked[1:] == QUESTION


def test_an_answer_that_does_not_fit_is_asked_again_with_the_validation_error() -> None:
    model = Model('{"label": "great", "score": 1}', '{"label": "good", "score": 1}')

    answer = answer_with_repairs(model, QUESTION, OutputSchema(SCHEMA), max_repairs=2)

    assert answer.data == {"label": "good", "score": 1}
    assert answer.repairs == 1
    first, second = model.asked
    assert second[: len(first)] == first
    assert second[len(first)] == {"role": "assistant", "content": '{"label": "great", "score": 1}'}
    repair = second[len(first) + 1]
    assert repair["role"] == "user"
    assert "answer.label: 'great' is not one of ['good', 'bad']" in repair["content"]


def test_an_answer_that_never_fits_fails_for_good_after_max_repairs_with_the_last_error() -> None:
    model = Model("not json at all", '{"label": "good"}', '{"label": "good", "score": "high"}')

    with pytest.raises(PermanentError) as raised:
        answer_with_repairs(model, QUESTION, OutputSchema(SCHEMA), max_repairs=2)

    assert len(model.asked) == 3
    message = str(raised.value)
    assert "after 3 tries" in message
    assert "answer.score: 'high' is not of type 'number'" in message
    assert "not JSON" in model.asked[1][-1]["content"]
    assert "'score' is a required property" in model.asked[2][-1]["content"]


def test_no_repair_allowed_means_one_try() -> None:
    model = Model("[]")

    with pytest.raises(PermanentError, match="after 1 try: answer: "):
        answer_with_repairs(model, QUESTION, OutputSchema(SCHEMA), max_repairs=0)
    assert len(model.asked) == 1


def test_without_a_schema_the_first_answer_is_taken_as_it_is() -> None:
    model = Model("plain words")

    answer = answer_with_repairs(model, QUESTION, None, max_repairs=2)

    assert (answer.completion.content, answer.data, answer.repairs) == ("plain words", None, 0)
    assert model.asked == [QUESTION]


@pytest.mark.parametrize(
    "content",
    [
        '```json\n{"label": "bad", "score": 0}\n```',
        '```\n{"label": "bad", "score": 0}```',
        '  {"label": "bad", "score": 0}\n',
    ],
)
def test_json_in_a_code_fence_is_taken_out_of_it(content: str) -> None:
    data, problem = OutputSchema(SCHEMA).check(content)

    assert (data, problem) == ({"label": "bad", "score": 0}, None)


@pytest.mark.parametrize(
    "ref", ["https://example.com/schema.json", "file:///etc/passwd", "#/$defs/missing"]
)
def test_a_schema_reference_that_would_need_fetching_fails_for_good_and_fetches_nothing(
    ref: str,
) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"x": {"$ref": ref}}}

    with pytest.raises(PermanentError, match="cannot be resolved"):
        OutputSchema(schema).check('{"x": 1}')
