"""What a JSON value stored in PostgreSQL may hold, checked where data enters the farm, and
the one serialiser every write to a ``jsonb`` column goes through.

``jsonb`` refuses strings with a NUL character (``\\u0000``) or a lone surrogate
(``\\ud800``), JSON has no NaN or Infinity, and only JSON's own types serialise. Run
inputs and agent outputs are checked here (:func:`unstorable`) so that such a value is
reported by its field instead of failing deep in a database write. What the farm writes
of its own accord, such as an agent's error message, cannot be refused: :func:`dumps`
stores it with those characters replaced (:func:`storable`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_LIMIT = 20  # problems reported at most

# Characters a jsonb string cannot hold, and what stands in for them when stored.
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# json.dumps escapes both kinds (ensure_ascii), so its text shows whether a value needs
# cleaning: a NUL as \u0000, a surrogate as \udXXX (a valid pair too: a false alarm, only
# slower).
_SUSPECT = re.compile(r"\\u0000|\\ud[89a-f]")


def unstorable(value: Any, root: str) -> list[str]:
    """Every part of ``value`` that cannot be stored as JSON, each as ``path: reason``
    (``root`` is the path's first part, e.g. ``input``). Empty when all is well."""
    problems: list[str] = []
    _walk(value, root, problems)
    return problems[:_LIMIT]


def dumps(value: Any) -> str:
    """``value`` as JSON text that ``jsonb`` accepts: strings cleaned by :func:`storable`.
    The engines' and the direct cursors' serialiser, so every writer goes through it."""
    text = json.dumps(value)
    if _SUSPECT.search(text) is None:  # the common case: one scan of the text, in C
        return text
    return json.dumps(storable(value))


def storable(value: Any) -> Any:
    """``value`` with every NUL character and lone surrogate, in strings and keys, replaced
    by U+FFFD; other values as they are."""
    if isinstance(value, str):
        return _UNSTORABLE_CHARS.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def _walk(value: Any, path: str, problems: list[str]) -> None:
    if len(problems) >= _LIMIT:
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if "\x00" in value:
            problems.append(f"{path}: contains a NUL character (\\u0000), which cannot be stored")
        elif _UNSTORABLE_CHARS.search(value):
            problems.append(f"{path}: contains a lone surrogate, which cannot be stored")
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"{path}: {value} is not a JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
                continue
            if _UNSTORABLE_CHARS.search(key):
                problems.append(f"{path}: a key contains a NUL character or a lone surrogate")
                continue
            _walk(item, f"{path}.{key}", problems)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}", problems)
    else:
        problems.append(f"{path}: a {type(value).__name__} is not a JSON value")
