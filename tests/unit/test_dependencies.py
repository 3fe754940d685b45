"""pyproject.toml's lower bounds are at least what the installed dependencies themselves need."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _ours(group: str | None = None) -> dict[str, Requirement]:
    extras = PROJECT.get("optional-dependencies", {})
    lines = PROJECT["dependencies"] if group is None else extras.get(group, [])
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def _floor(specifier: SpecifierSet) -> Version | None:
    floors = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(floors, default=None)


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    marker: Marker | None = requirement.marker
    if marker is None:
        return True
    return any(marker.evaluate({"extra": extra}) for extra in extras | {""})


def _demands() -> list[tuple[str, Requirement]]:
    """Every requirement that the installed dependencies of the product place on a package."""
    ours = {**_ours(), **_ours("flower"), **_ours("api")}
    # A package is visited once per set of extras: celery[redis] asks kombu[redis] for redis.
    seen: set[tuple[str, frozenset[str]]] = set()
    found: list[tuple[str, Requirement]] = []
    todo = [(name, set(req.extras)) for name, req in ours.items()]
    while todo:
        name, extras = todo.pop()
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if _applies(requirement, extras):
                found.append((name, requirement))
                todo.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return found


def test_every_lower_bound_satisfies_what_the_installed_dependencies_require() -> None:
    ours = {**_ours(), **_ours("flower"), **_ours("api")}
    too_low = []
    for who, demand in _demands():
        mine = ours.get(canonicalize_name(demand.name))
        if mine is None or not demand.specifier:
            continue
        floor = _floor(mine.specifier)
        if floor is None or floor not in demand.specifier:
            too_low.append(f"{mine} while {who} requires {demand.name}{demand.specifier}")
    assert too_low == []


@pytest.mark.parametrize("name", sorted({**_ours(), **_ours("flower"), **_ours("api")}))
def test_the_installed_version_of_each_dependency_is_within_its_bounds(name: str) -> None:
    requirement = {**_ours(), **_ours("flower"), **_ours("api")}[name]

    assert Version(metadata.version(name)) in requirement.specifier


def test_flower_is_an_extra_so_producers_do_not_install_tornado() -> None:
    assert "flower" not in _ours()
    assert "flower" in _ours("flower")


def test_the_api_is_an_extra_so_producers_and_workers_do_not_install_a_web_server() -> None:
    assert not {"fastapi", "uvicorn"} & set(_ours())
    assert {"fastapi", "uvicorn"} <= set(_ours("api"))
