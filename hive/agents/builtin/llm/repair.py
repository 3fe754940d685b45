"""``output_schema``: the answer must be JSON that fits it; if not, the model is asked again.

The loop is a function of an ``ask(messages) -> Completion`` callable, so it knows nothing
of HTTP, providers or fallbacks: each round sends the conversation so far, and a failed
round adds the model's answer and a user message naming the validation error. After
``max_repairs`` such rounds the step fails for good with the last error.

Schemas are validated with the metaschemas as their only registry, as run input is
(hive/pipelines/inputs.py): a ``$ref`` to a URL, ``file://`` included, is never fetched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema_specifications import REGISTRY as SCHEMA_REGISTRY  # type: ignore[import-untyped]
from referencing.exceptions import Unresolvable

from hive.agents.builtin.llm.client import Completion
from hive.errors import PermanentError

# A validation error quotes the value it refused: enough of it to be understood.
_PROBLEM_CHARS = 500
# Models often wrap JSON in a Markdown code fence despite being asked not to.
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?\s*```\s*$", re.DOTALL)


class OutputSchema:
    """A step's ``output_schema``, ready to check answers against."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator = Draft202012Validator(schema, registry=SCHEMA_REGISTRY)

    def instruction(self) -> str:
        """The system message that asks for JSON fitting the schema."""
        return (
            "Answer with one JSON value and nothing else (no prose, no code fence). "
            "It must fit this JSON Schema:\n" + json.dumps(self.schema, ensure_ascii=False)
        )

    def check(self, content: str) -> tuple[Any, str | None]:
        """The answer parsed, and what is wrong with it (None: it fits).

        Raises:
            PermanentError: the schema has a ``$ref`` that cannot be resolved.
        """
        fenced = _FENCE.match(content)
        text = fenced.group("body") if fenced else content
        try:
            data = json.loads(text)
        except ValueError as exc:
            return None, f"the answer is not JSON: {exc}"
        try:
            error = best_match(self._validator.iter_errors(data))
        except Unresolvable as exc:
            ref = getattr(exc, "ref", "a reference")
            raise PermanentError(
                f"output_schema: {ref!r} cannot be resolved (other schemas are never fetched)"
            ) from None
        if error is None:
            return data, None
        where = ".".join(["answer", *(str(p) for p in error.absolute_path)])
        return data, f"{where}: {error.message}"[:_PROBLEM_CHARS]

    @staticmethod
    def repair_request(problem: str) -> str:
        return (
            f"Your answer does not fit the required JSON Schema: {problem}\n"
            "Answer again with only the corrected JSON value."
        )


@dataclass(frozen=True)
class Answer:
    completion: Completion
    data: Any
    repairs: int


def answer_with_repairs(
    ask: Callable[[list[dict[str, str]]], Completion],
    messages: list[dict[str, str]],
    schema: OutputSchema | None,
    max_repairs: int,
) -> Answer:
    """Ask, and with a schema, ask again with each validation error up to ``max_repairs``
    times.

    Raises:
        PermanentError: the last answer still does not fit; names the last error and how
            many answers were refused.
    """
    conversation = list(messages)
    problem: str | None = None
    if schema is not None:
        conversation.insert(0, {"role": "system", "content": schema.instruction()})
    for repairs in range(max_repairs + 1):
        completion = ask(conversation)
        if schema is None:
            return Answer(completion, None, 0)
        data, problem = schema.check(completion.content)
        if problem is None:
            return Answer(completion, data, repairs)
        conversation = [
            *conversation,
            {"role": "assistant", "content": completion.content},
            {"role": "user", "content": schema.repair_request(problem)},
        ]
    tries = max_repairs + 1
    raise PermanentError(
        f"the answer did not fit output_schema after {tries} "
        f"{'try' if tries == 1 else 'tries'}: {problem}"
    )
