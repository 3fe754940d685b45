"""What a JSON value stored in PostgreSQL may hold, checked where data enters the farm.

``jsonb`` refuses strings with a NUL character (``\\u0000``), JSON has no NaN or
Infinity, and only JSON's own types serialise. Run inputs and agent outputs are
checked here so that such a value is reported by its field instead of failing
deep in a database write.
"""

from __future__ import annotations

import math
from typing import Any

_LIMIT = 20  # problems reported at most


def unstorable(value: Any, root: str) -> list[str]:
    """Every part of ``value`` that cannot be stored as JSON, each as ``path: reason``
    (``root`` is the path's first part, e.g. ``input``). Empty when all is well."""
    problems: list[str] = []
    _walk(value, root, problems)
    return problems[:_LIMIT]


def _walk(value: Any, path: str, problems: list[str]) -> None:
    if len(problems) >= _LIMIT:
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if "\x00" in value:
            problems.append(f"{path}: contains a NUL character (\\u0000), which cannot be stored")
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"{path}: {value} is not a JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
                continue
            if "\x00" in key:
                problems.append(f"{path}: a key contains a NUL character (\\u0000)")
                continue
            _walk(item, f"{path}.{key}", problems)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}", problems)
    else:
        problems.append(f"{path}: a {type(value).__name__} is not a JSON value")
