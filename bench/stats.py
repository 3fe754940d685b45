"""Percentiles and rates, kept dependency-free."""

from __future__ import annotations

import math


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def p50_p99_ms(seconds: list[float]) -> tuple[float, float]:
    """The median and 99th percentile of durations in seconds, in milliseconds."""
    return percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf
