"""Run input: checked against the pipeline's ``input_schema`` before anything is stored."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from hive.errors import InputError
from hive.jsondata import unstorable
from hive.pipelines.refs import format_location
from hive.pipelines.spec import Pipeline


def validate_run_input(pipeline: Pipeline, data: Any) -> None:
    """Check ``data`` against ``pipeline.input_schema`` (JSON Schema Draft 2020-12).

    ``format`` is not asserted. Every error is reported, sorted by field path.

    Raises:
        InputError: one problem per error, each naming the field, e.g.
            ``input.text: 5 is not of type 'string'``; also for values JSON or PostgreSQL
            cannot hold (NaN, a NUL character, a Python object).
    """
    unfit = unstorable(data, "input")
    if unfit:
        raise InputError(pipeline.name, unfit)
    errors = sorted(_validator(pipeline.input_schema).iter_errors(data), key=_sort_key)
    if errors:
        raise InputError(pipeline.name, [_problem(error) for error in errors])


# Building a validator costs more than validating a small input: keep one per schema.
_validators: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = Draft202012Validator(schema)
    _validators[id(schema)] = (schema, validator)
    return validator


def _problem(error: ValidationError) -> str:
    return f"{format_location(tuple(error.absolute_path), 'input')}: {error.message}"


def _sort_key(error: ValidationError) -> tuple[tuple[tuple[int, int, str], ...], str]:
    # Numbers before names, and list indexes in numeric order (2 before 10).
    path = tuple(
        (0, part, "") if isinstance(part, int) else (1, 0, str(part))
        for part in error.absolute_path
    )
    return path, error.message
