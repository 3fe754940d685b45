"""Run input: checked against the pipeline's ``input_schema`` before anything is stored."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from hive.errors import InputError
from hive.jsondata import unstorable
from hive.pipelines.bounds import json_bound_problems
from hive.pipelines.refs import format_location
from hive.pipelines.spec import Pipeline
from hive.settings import Settings, get_settings

# jsonschema is imported by the checks that run (here and in hive.pipelines.checks), not by
# every `hive` command that imports the pipelines package.
if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError


def validate_run_input(pipeline: Pipeline, data: Any, settings: Settings | None = None) -> None:
    """Check ``data`` against ``pipeline.input_schema`` (JSON Schema Draft 2020-12) and
    against ``HIVE_MAX_INPUT_DEPTH`` and ``HIVE_MAX_INPUT_BYTES``.

    ``format`` is not asserted. Every schema error is reported, sorted by field path.

    Args:
        pipeline: the pipeline the run is for.
        data: the run input.
        settings: where the bounds come from; the process's settings when None.

    Raises:
        InputError: one problem per error, each naming the field, e.g.
            ``input.text: 5 is not of type 'string'``; also for values JSON or PostgreSQL
            cannot hold (NaN, a NUL character, a Python object) and for input nested too
            deep or too large.
    """
    limits = settings or get_settings()
    # First: a value nested past Python's recursion limit breaks the recursive checks below.
    too_big = json_bound_problems(data, "input", limits)
    if too_big:
        raise InputError(pipeline.name, too_big)
    unfit = unstorable(data, "input")
    if unfit:
        raise InputError(pipeline.name, unfit)
    from referencing.exceptions import Unresolvable

    try:
        errors = sorted(_validator(pipeline.input_schema).iter_errors(data), key=_sort_key)
    except Unresolvable as exc:
        # Loading refuses such schemas; a Pipeline built by hand may still hold one.
        ref = getattr(exc, "ref", "a reference")
        problem = f"input_schema: {ref!r} cannot be resolved (other schemas are never fetched)"
        raise InputError(pipeline.name, [problem]) from None
    if errors:
        raise InputError(pipeline.name, [_problem(error) for error in errors])


# Building a validator costs more than validating a small input: keep one per schema, by
# its content (every Client loads its own copy of each pipeline), and only so many.
_VALIDATORS_KEPT = 64
_validators: OrderedDict[str, Draft202012Validator] = OrderedDict()
_validators_lock = threading.Lock()


# The same schema object, submit after submit (a catalog's pipeline): its validator found
# by identity, without serialising and hashing the schema each time. Each entry holds its
# schema, so an id is not reused while it is here; schemas are never changed in place.
_by_identity: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    known = _by_identity.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    key = _fingerprint(schema)
    with _validators_lock:
        validator = _validators.get(key)
        if validator is not None:
            _validators.move_to_end(key)
            _remember(schema, validator)
            return validator
    from jsonschema import Draft202012Validator
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]

    # A registry of the metaschemas alone, that retrieves nothing: a $ref or $dynamicRef
    # to a URL (file:// included) is unresolvable instead of fetched.
    validator = Draft202012Validator(schema, registry=REGISTRY)
    with _validators_lock:
        _validators[key] = validator
        while len(_validators) > _VALIDATORS_KEPT:
            _validators.popitem(last=False)
        _remember(schema, validator)
    return validator


def _remember(schema: dict[str, Any], validator: Draft202012Validator) -> None:
    """Under the lock: keep ``schema``'s validator by identity, as many as by content."""
    if len(_by_identity) >= _VALIDATORS_KEPT:
        _by_identity.clear()  # catalogs reloaded many times over: start again
    _by_identity[id(schema)] = (schema, validator)


def _fingerprint(schema: dict[str, Any]) -> str:
    # repr for what YAML may add and JSON lacks (dates): two schemas differing only there
    # differ in their repr too.
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def _problem(error: ValidationError) -> str:
    return f"{format_location(tuple(error.absolute_path), 'input')}: {error.message}"


def _sort_key(error: ValidationError) -> tuple[tuple[tuple[int, int, str], ...], str]:
    # Numbers before names, and list indexes in numeric order (2 before 10).
    path = tuple(
        (0, part, "") if isinstance(part, int) else (1, 0, str(part))
        for part in error.absolute_path
    )
    return path, error.message
