"""Step options as stored (JSON) read back as :class:`~hive.agents.base.AgentOptions`.

Options are validated when a pipeline is loaded and stored without the options that equal
``AgentOptions``' defaults (:func:`hive.pipelines.plan_steps`; a row written by an older
Hive holds them all): every reading goes through :func:`step_options`, so a missing option
takes ``AgentOptions``' default, the one default there is, and SQL that reads an option from
the JSON supplies the same default (``coalesce``). A farm has few distinct option sets, so
each is validated once per process and the frozen result is shared: reading a step's
options costs a dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hive.agents.base import AgentOptions

_validated: dict[tuple[tuple[str, Any], ...], AgentOptions] = {}
# Far above the option sets of any farm's pipelines; a bound all the same.
_MAX_CACHED = 4096

DEFAULT_TIMEOUT_S: float = AgentOptions.model_fields["timeout"].default
"""For SQL that reads the timeout from the stored JSON (the claim's lease)."""


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an option's value (``input_guard`` is an object of lists)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def step_options(stored: Mapping[str, Any] | None) -> AgentOptions:
    """The options of a step row.

    Raises:
        pydantic.ValidationError: the stored options are not valid ones.
    """
    key: tuple[tuple[str, Any], ...] = tuple(sorted((stored or {}).items()))
    try:
        options = _validated.get(key)
    except TypeError:  # a nested value (input_guard): hashed through a frozen copy
        key = tuple(sorted((k, _frozen(v)) for k, v in (stored or {}).items()))
        options = _validated.get(key)
    if options is None:
        options = AgentOptions.model_validate(stored or {})
        if len(_validated) < _MAX_CACHED:
            _validated[key] = options
    return options
