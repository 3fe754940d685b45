"""The arguments of a service registration, checked before they reach PostgreSQL.

Every problem is named at once, one line each. URLs are http or https with a host and no
``user:password@`` (the registry is read by every viewer; secrets live in the
environment); durations are finite positive seconds; metadata is bounded string pairs.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hive.addresses import name_problems, url_problems
from hive.errors import InvalidArgument
from hive.statuses import ServiceStatus

DURATION_MAX_S = 365 * 86400.0
META_MAX_KEYS = 64
META_KEY_MAX_CHARS = 128
META_VALUE_MAX_CHARS = 512

_META_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def duration_problems(value: Any, what: str) -> list[str]:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= DURATION_MAX_S:
        return [
            f"{what} must be a positive number of seconds, at most {DURATION_MAX_S:g} "
            f"(a year), not {value!r}"
        ]
    return []


def meta_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"meta must be a mapping of text to text, not {type(value).__name__}"]
    if len(value) > META_MAX_KEYS:
        return [f"meta has {len(value)} keys; at most {META_MAX_KEYS}"]
    problems = []
    for key, item in value.items():
        ok_key = (
            isinstance(key, str) and len(key) <= META_KEY_MAX_CHARS and _META_KEY.fullmatch(key)
        )
        if not ok_key:
            problems.append(
                f"meta key {str(key)[:60]!r} must be 1 to {META_KEY_MAX_CHARS} letters, "
                "digits or _ . -"
            )
        elif not isinstance(item, str) or len(item) > META_VALUE_MAX_CHARS or "\x00" in item:
            problems.append(
                f"meta[{key!r}] must be text of at most {META_VALUE_MAX_CHARS} characters "
                "without NUL"
            )
    return problems


def check_registration(
    name: Any,
    url: Any,
    *,
    instance_id: Any,
    health_url: Any,
    ttl_s: Any,
    deregister_after_s: Any,
    meta: Any,
) -> None:
    """Raises InvalidArgument naming every argument that is not as documented."""
    problems = name_problems(name, "service name") + url_problems(url, "url")
    if instance_id is not None:
        problems += name_problems(instance_id, "instance id")
    if health_url is not None:
        problems += url_problems(health_url, "health_url")
    if ttl_s is not None:
        problems += duration_problems(ttl_s, "ttl_s")
    if deregister_after_s is not None:
        problems += duration_problems(deregister_after_s, "deregister_after_s")
    problems += meta_problems(meta)
    if problems:
        raise InvalidArgument(problems)


def check_lookup(
    *, name: Any = None, instance_id: Any = None, status: Any = None, limit: Any = 1000
) -> None:
    """Raises InvalidArgument unless the arguments of a read could name something."""
    problems = []
    if name is not None:
        problems += name_problems(name, "service name")
    if instance_id is not None:
        problems += _id_problems(instance_id)
    statuses = [s.value for s in ServiceStatus]
    if status is not None and status not in statuses:
        problems.append(f"status must be one of {', '.join(statuses)}, not {status!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        problems.append(f"limit must be a whole number from 1 to 10000, not {limit!r}")
    if problems:
        raise InvalidArgument(problems)


def _id_problems(instance_id: Any) -> list[str]:
    # Any text is a lookup (a malformed id finds nothing); only a non-string is refused.
    if not isinstance(instance_id, str) or "\x00" in instance_id:
        return ["instance id must be text without NUL"]
    return []
