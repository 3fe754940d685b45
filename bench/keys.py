"""Every Redis key and task name the benchmark uses, each built by one function."""

from __future__ import annotations

NOOP_TASK = "bench.noop"
STAMP_TASK = "bench.stamp"
FETCH_TASK = "bench.fetch"

_PREFIX = "hive-bench"


def marker_key() -> str:
    """The key that says a Redis db index belongs to the benchmark."""
    return f"{_PREFIX}:marker"


def stamp_key(name: str) -> str:
    """The list ``bench.stamp`` pushes onto for the measurement ``name``."""
    return f"{_PREFIX}:stamps:{name}"


def is_kombu_binding(key: bytes) -> bool:
    """Kombu's exchange→queue routing tables, which must survive a reset while a worker runs."""
    return key.startswith(b"_kombu.binding.")
