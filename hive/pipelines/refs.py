"""References in step inputs: ``$input[.<path>]`` and ``$steps.<id>[.<path>]``.

A string that starts with ``$`` is a reference and must be one of those forms, as
the whole string; ``$$`` at the start escapes a literal ``$`` (``"$$5"`` is the
text ``"$5"``). Paths are dot-separated keys; a segment made of digits indexes a
list. References may sit anywhere in a template: values of mappings and items of
lists, at any depth.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hive.errors import MalformedReference, UnresolvedReference

Location = tuple[str | int, ...]

_ESCAPE = "$$"
_ROOTS = ("input", "steps")


@dataclass(frozen=True)
class Reference:
    """A parsed reference: where it points (``input`` or one step's output) and the path inside."""

    root: Literal["input", "steps"]
    step: str | None
    path: tuple[str, ...]

    def __str__(self) -> str:
        head = "$input" if self.root == "input" else f"$steps.{self.step}"
        return ".".join((head, *self.path))


def is_reference(value: object) -> bool:
    """Whether ``value`` is a string that claims to be a reference (starts with one ``$``)."""
    return isinstance(value, str) and value.startswith("$") and not value.startswith(_ESCAPE)


def parse_reference(text: object) -> Reference | None:
    """Parse ``text`` as a reference.

    Returns:
        The reference, or None when ``text`` is a literal (not a string, no leading
        ``$``, or an escaped ``$$``).

    Raises:
        MalformedReference: ``text`` starts with ``$`` but is not a well-formed reference.
    """
    if not isinstance(text, str) or not is_reference(text):
        return None
    root, *rest = text[1:].split(".")
    if root not in _ROOTS:
        raise MalformedReference(
            text, f"must start with $input or $steps (write $$ for a literal $), not ${root}"
        )
    if any(not segment for segment in rest):
        raise MalformedReference(text, "empty path segment")
    if root == "input":
        return Reference("input", None, tuple(rest))
    if not rest:
        raise MalformedReference(text, "$steps must be followed by a step id: $steps.<id>")
    return Reference("steps", rest[0], tuple(rest[1:]))


def iter_references(template: Any, location: Location = ()) -> Iterator[tuple[Location, str]]:
    """Every string in ``template`` that claims to be a reference, with where it sits."""
    if isinstance(template, Mapping):
        for key, value in template.items():
            yield from iter_references(value, (*location, key))
    elif isinstance(template, list | tuple):
        for index, value in enumerate(template):
            yield from iter_references(value, (*location, index))
    elif is_reference(template):
        yield location, template


def referenced_steps(template: Any) -> set[str]:
    """Ids of the steps whose outputs ``template`` refers to.

    Raises:
        MalformedReference: a string in ``template`` is a malformed reference.
    """
    steps: set[str] = set()
    for _, text in iter_references(template):
        ref = parse_reference(text)
        if ref is not None and ref.step is not None:
            steps.add(ref.step)
    return steps


def format_location(location: Location, root: str = "") -> str:
    """``("a", 0, "b")`` → ``"a.0.b"``, after ``root`` when given (the reference path style)."""
    return ".".join(str(part) for part in (root, *location) if part != "")


def resolve(template: Any, run_input: Any, outputs: Mapping[str, Any]) -> Any:
    """Substitute every reference in ``template``; unescape ``$$`` literals.

    A pure function: neither ``template`` nor the data is modified, and the result
    shares no mutable parts with them.

    Args:
        template: a step's ``input`` (or the pipeline's ``output``).
        run_input: the run's validated input, what ``$input`` refers to.
        outputs: step id → that step's output, what ``$steps.<id>`` refers to.

    Raises:
        UnresolvedReference: a referenced step has no output or a path does not exist.
        MalformedReference: a string is a malformed reference.
    """
    if isinstance(template, Mapping):
        return {key: resolve(value, run_input, outputs) for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [resolve(value, run_input, outputs) for value in template]
    if isinstance(template, str):
        if template.startswith(_ESCAPE):
            return template[1:]
        ref = parse_reference(template)
        if ref is not None:
            return copy.deepcopy(lookup(ref, run_input, outputs))
    return template


def as_literal(value: Any) -> Any:
    """``value`` as a template that resolves to itself: strings that would read as
    references are escaped (an edited input is taken as written)."""
    if isinstance(value, str):
        return "$" + value if value.startswith("$") else value
    if isinstance(value, dict):
        return {k: as_literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_literal(v) for v in value]
    return value


def lookup(ref: Reference, run_input: Any, outputs: Mapping[str, Any]) -> Any:
    """The value ``ref`` points at (not copied).

    Raises:
        UnresolvedReference: the step has no output or the path does not exist.
    """
    if ref.step is None:
        value, walked = run_input, "$input"
    elif ref.step in outputs:
        value, walked = outputs[ref.step], f"$steps.{ref.step}"
    else:
        raise UnresolvedReference(str(ref), f"step {ref.step!r} has no output")
    for segment in ref.path:
        value = _child(value, segment, str(ref), walked)
        walked = f"{walked}.{segment}"
    return value


def _child(value: Any, segment: str, text: str, walked: str) -> Any:
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        raise UnresolvedReference(text, f"{walked} has no key {segment!r}")
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if not segment.isdigit():
            raise UnresolvedReference(text, f"{walked} is a list; {segment!r} is not an index")
        index = int(segment)
        if index >= len(value):
            raise UnresolvedReference(
                text, f"{walked} has no index {index} (it has {len(value)} items)"
            )
        return value[index]
    raise UnresolvedReference(
        text, f"{walked} is {type(value).__name__}, not a mapping or list; cannot take {segment!r}"
    )
