"""What a pipeline's values mean: options, references and inputs checked against the agents.

Each check returns ``(where, message)`` problems (see :mod:`hive.pipelines.document`)
and never raises, so the loader can report every problem in one pass.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, RootModel, ValidationError
from pydantic_core import ErrorDetails

from hive.agents.base import Agent, AgentOptions
from hive.agents.governance import InputGuardOptions
from hive.errors import MalformedReference
from hive.pipelines.document import Problem, describe_type
from hive.pipelines.refs import (
    Location,
    format_location,
    is_reference,
    iter_references,
    parse_reference,
)

AgentClass = type[Agent]  # type: ignore[type-arg]

# Keywords that can admit input properties beyond those listed in "properties".
_OPEN_SCHEMA_KEYWORDS = (
    "$ref",
    "$dynamicRef",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "patternProperties",
)


_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")


def check_input_schema(schema: dict[str, Any]) -> list[Problem]:
    """The schema itself must be valid JSON Schema (Draft 2020-12), every ``$ref`` and
    ``$dynamicRef`` in it resolvable without fetching anything."""
    # jsonschema, when a pipeline is loaded: not by every command that imports this package.
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        inside = format_location(tuple(exc.absolute_path), "input_schema")
        return [(inside, f"not a valid JSON Schema: {exc.message}")]
    return _reference_problems(schema)


def _reference_problems(schema: dict[str, Any]) -> list[Problem]:
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
    from referencing.exceptions import PointerToNowhere, Unresolvable
    from referencing.jsonschema import DRAFT202012

    # A dangling $ref passes check_schema but fails every run's input validation.
    resolvers: dict[int, Any] = {}  # id of each subschema → the resolver in its scope
    stack = [(schema, REGISTRY.resolver_with_root(DRAFT202012.create_resource(schema)))]
    while stack:
        contents, resolver = stack.pop()
        if not isinstance(contents, dict):
            continue
        resource = DRAFT202012.create_resource(contents)
        if resource.id() is not None and contents is not schema:
            resolver = resolver.in_subresource(resource)
        resolvers[id(contents)] = resolver
        stack.extend((sub, resolver) for sub in DRAFT202012.subresources_of(contents))
    problems: list[Problem] = []
    walk: list[tuple[Location, Any]] = [((), schema)]
    while walk:
        location, value = walk.pop()
        if isinstance(value, list):
            walk.extend(((*location, index), item) for index, item in enumerate(value))
        if not isinstance(value, dict):
            continue
        walk.extend(((*location, key), item) for key, item in value.items())
        if id(value) not in resolvers:
            continue
        # A $dynamicRef is looked up like a $ref first: left unchecked, jsonschema would
        # fetch its URL (file:// included) at every validation.
        for keyword in _REFERENCE_KEYWORDS:
            ref = value.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                resolvers[id(value)].lookup(ref)
            except PointerToNowhere:
                message = f"{keyword} {ref!r} points at nothing in the schema"
            except Unresolvable:
                message = f"{keyword} {ref!r} cannot be resolved (other schemas are never fetched)"
            else:
                continue
            problems.append((format_location((*location, keyword), "input_schema"), message))
    return sorted(problems)


def declared_input_properties(schema: Mapping[str, Any]) -> set[str] | None:
    """The run input's property names, or None when the schema does not pin them down.

    A name listed in ``required`` counts even when ``properties`` leaves it out.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict) or any(key in schema for key in _OPEN_SCHEMA_KEYWORDS):
        return None
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if isinstance(schema.get(keyword), dict):
            return None
    required = schema.get("required")
    listed = (
        {name for name in required if isinstance(name, str)}
        if isinstance(required, list)
        else set()
    )
    return set(properties) | listed


def scalar_input_type(schema: Mapping[str, Any]) -> str | None:
    """The schema's ``type`` when it admits neither an object nor an array, else None.

    ``$input.<path>`` cannot resolve in an input of such a type.
    """
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else declared
    if not isinstance(types, list) or not types or {"object", "array"} & set(types):
        return None
    return repr(declared)


def merge_options(
    agent: AgentClass | None, overrides: dict[str, Any]
) -> tuple[AgentOptions | None, list[Problem]]:
    """The agent's options with the step's overrides applied, validated as :class:`AgentOptions`."""
    base = agent.options if agent is not None else AgentOptions()
    try:
        return AgentOptions.model_validate({**base.model_dump(), **overrides}, strict=True), []
    except ValidationError as exc:
        problems: list[Problem] = []
        for error in exc.errors():
            where = format_location(error["loc"], "options")
            if error["type"] == "extra_forbidden" and len(error["loc"]) > 1:
                problems.append((where, _unknown_guard_field()))
            elif error["type"] == "extra_forbidden":
                allowed = ", ".join(AgentOptions.model_fields)
                problems.append((where, f"unknown option; options are: {allowed}"))
            else:
                problems.append((where, f"{error['msg']}, not {error['input']!r}"))
        return None, problems


def check_pipeline_guard(value: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """A pipeline's ``input_guard``, as the step option it becomes; None when absent or
    wrong (then with its problems, each at ``input_guard.<field>``)."""
    if value is None:
        return None, []
    try:
        guard = AgentOptions.model_validate({"input_guard": value}, strict=True).input_guard
    except ValidationError as exc:
        return None, [
            (format_location(e["loc"]), _unknown_guard_field())
            if e["type"] == "extra_forbidden"
            else (format_location(e["loc"]), f"{e['msg']}, not {e['input']!r}")
            for e in exc.errors()
        ]
    return (None if guard is None else guard.model_dump(mode="json")), []


def _unknown_guard_field() -> str:
    return f"unknown field; input_guard takes {', '.join(InputGuardOptions.model_fields)}"


def check_json(template: Any, root: str) -> list[Problem]:
    """Values YAML can express but JSON or PostgreSQL cannot hold must be quoted or removed.

    Dates, sets, binary, non-string keys, ``.nan`` / ``.inf`` and strings with a
    NUL character would otherwise fail only when a run stores them.
    """
    problems: list[Problem] = []
    stack: list[tuple[Location, Any]] = [((), template)]
    while stack:
        location, value = stack.pop()
        where = format_location(location, root)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    stack.append(((*location, key), item))
                else:
                    problems.append((where, f"key {key!r} is not a string; quote it"))
        elif isinstance(value, list):
            stack.extend(((*location, index), item) for index, item in enumerate(value))
        elif isinstance(value, str):
            if "\x00" in value:
                problems.append(
                    (where, "contains a NUL character (\\u0000), which cannot be stored")
                )
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append((where, f"{value} is not a JSON number"))
        elif not isinstance(value, int | float | bool | type(None)):
            hint = "; quote it" if isinstance(value, datetime.date) else ""
            problems.append((where, f"{describe_type(value)} cannot be stored as JSON{hint}"))
    return sorted(problems)


class ReferenceScope:
    """What references in one template may point at."""

    def __init__(
        self,
        step_agents: Mapping[str, AgentClass | None],
        input_properties: set[str] | None,
        input_scalar_type: str | None = None,
    ) -> None:
        self.step_agents = step_agents
        """Every step id of the pipeline → its agent class (None when unknown)."""
        self.input_properties = input_properties
        self.input_scalar_type = input_scalar_type
        """Set when the run input cannot be an object or array (see :func:`scalar_input_type`)."""

    def check(
        self, template: Any, root: str, owner: str | None = None, upstream: set[str] | None = None
    ) -> list[Problem]:
        """References in ``template``; ``owner`` is the step it belongs to (None: ``output``).

        ``upstream`` are the steps ``owner`` may refer to; None allows every step.
        """
        problems: list[Problem] = []
        for location, text in iter_references(template):
            where = format_location(location, root)
            try:
                ref = parse_reference(text)
            except MalformedReference as exc:
                problems.append((where, str(exc)))
                continue
            if ref is None:
                continue
            if ref.step is None:
                problem = self._input_problem(text, ref.path)
            else:
                problem = self._step_problem(text, ref.step, ref.path, owner, upstream)
            if problem:
                problems.append((where, problem))
        return problems

    def _input_problem(self, text: str, path: tuple[str, ...]) -> str | None:
        if path and self.input_scalar_type is not None:
            kind = self.input_scalar_type
            return f"{text!r}: input_schema's type is {kind}: the input has no fields"
        declared = self.input_properties
        if declared is None or not path or path[0] in declared:
            return None
        listed = ", ".join(sorted(declared)) or "none"
        return f"{text!r}: input_schema declares no property {path[0]!r} (properties: {listed})"

    def _step_problem(
        self,
        text: str,
        step: str,
        path: tuple[str, ...],
        owner: str | None,
        upstream: set[str] | None,
    ) -> str | None:
        if step not in self.step_agents:
            return f"{text!r} refers to unknown step {step!r}"
        if step == owner:
            return f"{text!r}: a step cannot refer to its own output"
        if upstream is not None and step not in upstream:
            return (
                f"{text!r} refers to step {step!r}, which is not upstream of step {owner!r}; "
                f"add {step!r} to needs (directly or through a step it needs)"
            )
        agent = self.step_agents[step]
        fields = output_fields(agent) if agent is not None and path else None
        if agent is None or fields is None or path[0] in fields:
            return None
        listed = ", ".join(sorted(fields)) or "none"
        return (
            f"{text!r}: agent {agent.name!r} of step {step!r} has no output field "
            f"{path[0]!r} (fields: {listed})"
        )


def output_fields(agent: AgentClass) -> set[str] | None:
    """Top-level keys of the agent's output, or None when they are open-ended."""
    model = agent.output_model
    if issubclass(model, RootModel) or model.model_config.get("extra") == "allow":
        return None
    return set(model.model_fields)


def check_agent_input(agent: AgentClass, template: dict[str, Any]) -> list[Problem]:
    """Literal parts of a step's ``input`` must fit the agent's ``input_model``.

    Values that are references, or contain them, are left to run time; a required
    field with no key at all, a literal of the wrong type and an unknown field are
    reported; so is any reference inside a field the agent pins (:func:`pinned_problems`).
    """
    model = agent.input_model
    problems: list[Problem] = []
    if model.model_config.get("extra") != "allow":
        known = _input_names(model)
        for key in template:
            if key not in known:
                listed = ", ".join(sorted(model.model_fields)) or "none"
                message = f"unknown field for agent {agent.name!r}; its fields are: {listed}"
                problems.append((format_location((key,), "input"), message))
    view = _unescape(template)
    try:
        model.model_validate(view)
    except ValidationError as exc:
        for error in exc.errors():
            problem = _literal_problem(error, template, view)
            if problem is not None:
                problems.append(problem)
    return problems + pinned_problems(agent, template)


def pinned_problems(agent: AgentClass, template: Mapping[str, Any]) -> list[Problem]:
    """References inside the fields ``agent`` pins (:meth:`~hive.agents.base.Agent.pinned_fields`):
    each is a problem naming where it sits, the field and why it must be literal."""
    problems: list[Problem] = []
    for name, why in sorted(agent.pinned_fields(template).items()):
        if name not in template:
            continue
        for location, text in iter_references(template[name], (name,)):
            try:
                parse_reference(text)
            except MalformedReference:
                continue  # reported as malformed by ReferenceScope.check
            where = format_location(location, "input")
            if location == (name,):
                message = f"must be written in the pipeline, not taken from a reference ({text})"
            else:
                message = (
                    f"inside {name}, which must be written in the pipeline, not taken from a "
                    f"reference ({text})"
                )
            problems.append((where, f"{message}: {why}"))
    return problems


_ABSENT = object()


def pinned_changes(
    agent: AgentClass, template: Mapping[str, Any], new_input: Mapping[str, Any]
) -> list[Problem]:
    """Pinned fields that an edited input (a replay's ``--input``, an approval's edit)
    changes from the step's template: an edit may not do what a reference may not.

    Pinned are the fields ``agent`` pins for the template or for the new input (an ``http``
    step given ``auth`` by the edit pins its address as well). Each must be absent from
    both, or the same in both; a template whose pinned field holds a reference (stored
    before the rule) cannot be shown unchanged, so it is a change too.
    """
    pinned = {**agent.pinned_fields(new_input), **agent.pinned_fields(template)}
    problems: list[Problem] = []
    for name, why in sorted(pinned.items()):
        old = template.get(name, _ABSENT)
        new = new_input.get(name, _ABSENT)
        if old is _ABSENT or not _contains_reference(old):
            written = old if old is _ABSENT else _unescape(old)
            if written == new:
                continue
        problems.append(
            (format_location((name,), "input"), f"may not differ from the pipeline's: {why}")
        )
    return problems


def _input_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
    return names


def _literal_problem(error: ErrorDetails, template: Any, view: Any) -> Problem | None:
    """The problem ``error`` shows, or None when it may be caused by a reference.

    ``view`` is ``template`` with ``$$`` unescaped (what was validated); references
    are looked for in ``template``, where ``"$$5"`` is still told apart from ``"$5"``.
    """
    location = error["loc"]
    where = format_location(location, "input")
    value, reached, through_reference = _walk(template, location)
    if through_reference:
        return None
    if error["type"] == "missing":
        return where, "required field is missing"
    if error["type"] == "extra_forbidden":
        # Top-level unknown fields are reported by check_agent_input itself.
        return None if len(location) == 1 else (where, "unknown field")
    if _contains_reference(value):
        return None
    # A value that is no JSON is reported by check_json; JsonValue fields also
    # stop short of it (their locations hold "dict" / "list" tags), hence "not reached".
    if (not reached or not isinstance(value, dict | list)) and check_json(value, ""):
        return None
    shown = _walk(view, location)[0]
    got = f" (got {shown!r:.60})" if reached and not isinstance(shown, dict | list) else ""
    return where, f"{error['msg']}{got}"


def _walk(view: Any, location: tuple[str | int, ...]) -> tuple[Any, bool, bool]:
    """Follow ``location`` into ``view``.

    Returns:
        (the deepest value reached, whether it is the end of ``location``, whether a
        reference was met on the way).
    """
    value = view
    for part in location:
        if is_reference(value):
            return value, False, True
        in_dict = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if in_dict or in_list:
            value = value[part]
        else:
            return value, False, False
    return value, True, is_reference(value)


def _contains_reference(value: Any) -> bool:
    return any(True for _ in iter_references(value))


def _unescape(template: Any) -> Any:
    """``template`` with ``$$`` literals unescaped and references left as they are."""
    if isinstance(template, dict):
        return {key: _unescape(value) for key, value in template.items()}
    if isinstance(template, list):
        return [_unescape(value) for value in template]
    if isinstance(template, str) and template.startswith("$$"):
        return template[1:]
    return template
