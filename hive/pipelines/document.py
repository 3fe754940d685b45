"""A pipeline file as written: its YAML parsed and its structure checked field by field.

Structure only (which fields, of which types); what the values mean — agents,
needs, references — is checked in :mod:`hive.pipelines.checks`. Every function
here returns problems as ``(where, message)`` pairs instead of raising, so one
pass reports them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from hive.pipelines.bounds import (
    AGENT_NAME_MAX_CHARS,
    BUDGET_MAX_USD,
    PIPELINE_NAME_MAX_CHARS,
    STEP_ID_MAX_CHARS,
)
from hive.pipelines.refs import format_location

ModelT = TypeVar("ModelT", bound=BaseModel)

Problem = tuple[str, str]
"""(where, message): ``where`` is a field path such as ``name`` or ``needs.0``."""


class PipelineDocument(BaseModel):
    """The top level of a pipeline file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Names are stored in varchar columns by every submit: too long fails there, not here.
    name: str = Field(max_length=PIPELINE_NAME_MAX_CHARS)
    version: int = Field(ge=1)
    description: str | None = None
    input_schema: dict[str, Any]
    steps: list[Any]
    """Each item is checked on its own with :class:`StepDocument`."""
    output: Any = None
    budget_usd: float | None = Field(default=None, gt=0, le=BUDGET_MAX_USD, allow_inf_nan=False)
    """Each run's cost budget unless its submit sets one (see hive/guard/budgets.py)."""
    input_guard: Any = None
    """The input guard of every step whose agent has one by default (the ``llm`` agent's),
    unless the step sets its own; checked with the step options."""


class StepDocument(BaseModel):
    """One item of ``steps``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(max_length=STEP_ID_MAX_CHARS)
    agent: str = Field(max_length=AGENT_NAME_MAX_CHARS)
    needs: list[str] = Field(default_factory=list)
    input: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping instead of keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def read_yaml(path: Path) -> tuple[Any, list[str]]:
    """Parse ``path``; returns (data, problems). Problems name the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"cannot read the file: {exc}"]
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ": ".join(part for part in (exc.context, exc.problem) if part)
        return None, [f"{where}invalid YAML: {what}"]
    except yaml.YAMLError as exc:
        return None, [f"invalid YAML: {exc}"]


def problem_lines(problems: list[Problem]) -> list[str]:
    """``(where, message)`` pairs as ``where: message`` lines."""
    return [f"{where}: {message}" for where, message in problems]


def describe_type(value: Any) -> str:
    """The YAML-ish name of ``value``'s type, for messages."""
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        type(None): "empty",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def validate_document(
    model: type[ModelT], data: Any, root: tuple[str | int, ...] = ()
) -> tuple[ModelT | None, list[Problem]]:
    """Validate ``data`` against ``model``; every pydantic error becomes one problem."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [_problem(model, error, root) for error in exc.errors()]


def _problem(model: type[BaseModel], error: ErrorDetails, root: tuple[str | int, ...]) -> Problem:
    where = format_location((*root, *error["loc"]))
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        return where, f"unknown field; allowed fields: {allowed}"
    if error["type"] == "missing":
        return where, "required field is missing"
    if error["type"] == "string_too_long":
        limit = (error.get("ctx") or {}).get("max_length")
        return where, f"{len(error['input']):,} characters long; at most {limit}"
    if error["type"].endswith("_type"):
        return where, f"{error['msg']}, not {describe_type(error['input'])}"
    return where, error["msg"]
