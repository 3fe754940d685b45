"""Bounds on what enters the farm: the size and nesting of JSON values, and submit's arguments.

A value nested deeper than Python's recursion allows fails every later step (resolving
references, storing, validating) with ``RecursionError``; a huge one fills PostgreSQL and
every worker's memory. Both are refused where they enter: run input at submit, an edited
input at replay, an agent's output before it is stored. The walk here is iterative, so
that measuring a value can never hit the recursion it guards against.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hive.errors import InvalidAgentOutput, InvalidArgument
from hive.jsondata import unstorable
from hive.settings import Settings

# The widths of their columns (hive/db/models.py; a test holds them equal): a longer value
# would fail deep in the INSERT of every submit.
TENANT_MAX_CHARS = 200
IDEMPOTENCY_KEY_MAX_CHARS = 200
PIPELINE_NAME_MAX_CHARS = 200
STEP_ID_MAX_CHARS = 200
AGENT_NAME_MAX_CHARS = 200
# now() + the deadline must stay a timestamp PostgreSQL can hold.
DEADLINE_MAX_S = 10 * 365 * 86400.0
# A budget must fit runs.budget_usd (numeric(20, 9)) with room for what is spent past it.
BUDGET_MAX_USD = 1_000_000_000.0

_PATH_PARTS_SHOWN = 6

_Chain = tuple[Any, "_Chain"] | None


def json_bound_problems(value: Any, root: str, settings: Settings) -> list[str]:
    """What makes ``value`` too deep or too large, each problem naming the field.

    Depth counts nested objects and arrays (``{"a": [1]}`` is 2 deep); size is the value
    as compact UTF-8 JSON.

    Args:
        value: a JSON-like value (run input or agent output).
        root: the first part of the paths in messages, e.g. ``input``.
        settings: the bounds, ``max_input_depth`` and ``max_input_bytes``.

    Returns:
        At most one problem: the depth, checked first, or the size. Empty when in bounds.
    """
    max_bytes, max_depth = settings.pipelines.max_input_bytes, settings.pipelines.max_input_depth
    too_deep = _first_too_deep(value, max_depth)
    if too_deep is not None:
        where = _format_path(root, too_deep)
        return [f"{where}: nested deeper than {max_depth} levels (HIVE_MAX_INPUT_DEPTH)"]
    size = _json_bytes(value)
    if size <= max_bytes:
        return []
    largest = ""
    if isinstance(value, dict | list) and value:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        key, member = max(items, key=lambda item: _json_bytes(item[1]))
        largest = f" ({_format_path(root, [key])} alone {_json_bytes(member):,})"
    limit = f"at most {max_bytes:,} (HIVE_MAX_INPUT_BYTES)"
    return [f"{root}: {size:,} bytes of JSON{largest}; {limit}"]


def check_output_bounds(output: Any, settings: Settings) -> None:
    """Refuse an agent's output that is too deep or too large to store.

    Raises:
        InvalidAgentOutput: a permanent failure naming the field and the limit.
    """
    problems = json_bound_problems(output, "output", settings)
    if problems:
        raise InvalidAgentOutput("; ".join(problems))


def check_submission(
    tenant: Any, idempotency_key: Any, deadline: Any, budget_usd: Any = None
) -> None:
    """Refuse submit arguments PostgreSQL could not store, naming the argument.

    Raises:
        InvalidArgument: ``tenant`` is not a tenant name (see :func:`check_tenant`);
            ``idempotency_key`` is not a string, is longer than its column or holds a NUL
            character; ``deadline`` is not a finite number of seconds above zero and at most
            ten years; ``budget_usd`` is not a finite amount above zero and at most a billion.
    """
    problems = [
        *_tenant_problems(tenant),
        *_text_problems("idempotency_key", idempotency_key, IDEMPOTENCY_KEY_MAX_CHARS),
        *_deadline_problems(deadline),
        *budget_problems("budget_usd", budget_usd),
    ]
    if problems:
        raise InvalidArgument(problems)


def check_tenant(tenant: Any) -> None:
    """Refuse a tenant that no run could be stored under; None (no tenant) passes.

    Raises:
        InvalidArgument: not a string, empty (a run nobody bound to a tenant could ever
            see), beginning or ending with white space, longer than its column, or
            holding a NUL character.
    """
    problems = _tenant_problems(tenant)
    if problems:
        raise InvalidArgument(problems)


def check_deadline(deadline: Any) -> None:
    """Refuse a run deadline as submit does; None (no new deadline) passes. For a replay's
    new deadline.

    Raises:
        InvalidArgument: not a finite number of seconds above zero and at most ten years.
    """
    problems = _deadline_problems(deadline)
    if problems:
        raise InvalidArgument(problems)


def _tenant_problems(tenant: Any) -> list[str]:
    if tenant == "":
        return ["tenant must be a non-empty name (or None for no tenant)"]
    problems = _text_problems("tenant", tenant, TENANT_MAX_CHARS)
    if not problems and tenant is not None and tenant != tenant.strip():
        # " " would be a tenant nobody types twice alike, "acme " another tenant than
        # "acme": its runs out of sight of acme's keys.
        return [f"tenant {tenant!r} begins or ends with white space"]
    return problems


def _text_problems(name: str, value: Any, max_chars: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"{name} must be a string, not {type(value).__name__}"]
    if len(value) > max_chars:
        return [f"{name} is {len(value):,} characters long; at most {max_chars}"]
    if "\x00" in value:
        return [f"{name} contains a NUL character (\\u0000), which cannot be stored"]
    if unstorable(value, name):  # a lone surrogate, which no UTF-8 encodes
        return [f"{name} contains a lone surrogate, which cannot be stored"]
    return []


def _deadline_problems(deadline: Any) -> list[str]:
    if deadline is None:
        return []
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        return [f"deadline must be a number of seconds, not {type(deadline).__name__}"]
    if not math.isfinite(deadline) or not 0 < deadline <= DEADLINE_MAX_S:
        return [
            f"deadline must be a positive number of seconds, at most {DEADLINE_MAX_S:.0f}, "
            f"not {deadline!r}"
        ]
    return []


def budget_problems(name: str, amount: Any) -> list[str]:
    """Why ``amount`` is no budget in USD (a finite number above zero, at most a billion);
    none for None."""
    if amount is None:
        return []
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return [f"{name} must be a number of USD, not {type(amount).__name__}"]
    if not math.isfinite(amount) or not 0 < amount <= BUDGET_MAX_USD:
        return [f"{name} must be a positive amount of USD, at most {BUDGET_MAX_USD:.0f}, "
                f"not {amount!r}"]  # fmt: skip
    return []


def _first_too_deep(value: Any, max_depth: int) -> list[Any] | None:
    """The path to the first container nested deeper than ``max_depth``, or None."""
    # (value, how many containers enclose it, its path as a (key, parent path) chain):
    # a chain, so that a wide value is not walked with one path list copied per member.
    stack: list[tuple[Any, int, _Chain]] = [(value, 0, None)]
    while stack:
        current, depth, chain = stack.pop()
        if isinstance(current, dict):
            children: Any = current.items()
        elif isinstance(current, list | tuple):
            children = enumerate(current)
        else:
            continue
        if depth + 1 > max_depth:
            path: list[Any] = []
            while chain is not None:
                key, chain = chain
                path.append(key)
            return path[::-1]
        stack.extend(
            (child, depth + 1, (key, chain))
            for key, child in children
            if isinstance(child, dict | list | tuple)
        )
    return None


# Anything JSON cannot hold is reported elsewhere (hive.jsondata); here it only must not
# stop the measuring. One encoder, made once: json.dumps with any non-default argument
# builds a new one at every call (every step's output and every submit's input).
_MEASURING = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), skipkeys=True, default=repr
)


def _json_bytes(value: Any) -> int:
    return len(_MEASURING.encode(value).encode("utf-8", errors="surrogatepass"))


def _format_path(root: str, path: list[Any]) -> str:
    parts = [str(part) for part in path]
    if len(parts) > _PATH_PARTS_SHOWN:
        # A path 65 levels long says less than its start, its end and its length.
        hidden = len(parts) - _PATH_PARTS_SHOWN
        parts = [*parts[: _PATH_PARTS_SHOWN - 1], f"<{hidden} more>", parts[-1]]
    return ".".join([root, *parts])
