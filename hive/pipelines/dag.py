"""The step graph: cycles and ancestry over ``needs``.

Graphs are ``{step id: [ids it needs]}`` in file order. Needs that name no step
are ignored here (the loader reports them), so these functions work on broken
pipelines too and every problem can be reported in one pass. Iterative, so a
long chain of steps cannot hit the recursion limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

Graph = Mapping[str, Sequence[str]]


def find_cycles(graph: Graph) -> list[list[str]]:
    """Cycles of ``needs``, each as a path that starts and ends at the same step.

    Each step appears in at most one reported cycle; cycles are ordered by their
    first step in file order, and each starts at its earliest step in file order.
    A step that needs itself is reported as ``[a, a]``.
    """
    stuck = _steps_not_orderable(graph)
    covered: set[str] = set()
    cycles: list[list[str]] = []
    for start in graph:
        if start not in stuck or start in covered:
            continue
        cycle = _shortest_cycle(graph, start, stuck - covered)
        if cycle:
            covered.update(cycle)
            cycles.append(cycle)
    return cycles


def ancestors(graph: Graph) -> dict[str, set[str]]:
    """Step id → every step it needs directly or through other steps (itself only on a cycle)."""
    result: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        queue = deque(_known_needs(graph, start))
        while queue:
            step = queue.popleft()
            if step in seen:
                continue
            seen.add(step)
            queue.extend(_known_needs(graph, step))
        result[start] = seen
    return result


def _known_needs(graph: Graph, step: str) -> list[str]:
    return [need for need in graph.get(step, ()) if need in graph]


def _steps_not_orderable(graph: Graph) -> set[str]:
    """Steps on a cycle or downstream of one: what remains after peeling off orderable steps."""
    remaining = set(graph)
    changed = True
    while changed:
        changed = False
        for step in list(remaining):
            if not any(need in remaining for need in _known_needs(graph, step)):
                remaining.discard(step)
                changed = True
    return remaining


def _shortest_cycle(graph: Graph, start: str, allowed: set[str]) -> list[str]:
    """The shortest path ``start -> ... -> start`` through ``allowed`` steps, or [] if none."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        step = queue.popleft()
        for need in _known_needs(graph, step):
            if need == start:
                path = [step]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if need in allowed and need not in parent:
                parent[need] = step
                queue.append(need)
    return []
