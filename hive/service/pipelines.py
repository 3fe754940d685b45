"""The pipelines a caller can submit: HIVE_PIPELINES_DIR, loaded once per change of its
files, its files looked at no more than once a second. A file that does not load takes
down its own pipeline alone: the others are served, and the broken one is named with its
problems to whoever asks for it (:class:`~hive.errors.BrokenPipeline`)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from hive.agents.registry import default_registry
from hive.errors import BrokenPipeline, UnknownPipeline
from hive.pipelines import Catalog, Pipeline, load_catalog, validate_paths, validate_run_input
from hive.pipelines.loader import SUFFIXES
from hive.preflight import check_pipelines_dir
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.views import AgentView, agent_view
from hive.settings import Settings

_Signature = tuple[tuple[str, int, int], ...]

# A directory's files are listed again only this long after they last were.
_RESCAN_S = 1.0

_lock = threading.Lock()
_loading = threading.Lock()
# By directory: its files' signature, when it was taken (time.monotonic()), the catalog.
_loaded: dict[Path, tuple[_Signature, float, Catalog]] = {}


@operation
def list_pipelines(settings: Settings, caller: Caller) -> dict[str, Pipeline]:
    """Every pipeline that loads, by name (:func:`pipeline_problems`: the others).

    Raises:
        SettingsError: ``HIVE_PIPELINES_DIR`` is not a directory.
    """
    caller.require(Right.READ)
    return dict(_catalog(settings).pipelines)


@operation
def pipeline_problems(settings: Settings, caller: Caller) -> list[str]:
    """The problems of the pipeline files that do not load, one line each naming the file
    (as ``hive pipelines validate`` reports them); empty when every one loads."""
    caller.require(Right.READ)
    return list(_catalog(settings).problems)


@operation
def get_pipeline(settings: Settings, caller: Caller, name: str) -> Pipeline:
    """Raises UnknownPipeline (naming the known ones), or BrokenPipeline (its file does
    not load, with why), besides what list_pipelines raises."""
    caller.require(Right.READ)
    return _find(_catalog(settings), name)


@operation
def validate_input(settings: Settings, caller: Caller, pipeline: str, data: Any) -> Pipeline:
    """Check ``data`` against the pipeline's ``input_schema`` without storing anything.

    Raises:
        InputError: names each field that does not fit.
    """
    caller.require(Right.SUBMIT)
    spec = _find(_catalog(settings), pipeline)
    validate_run_input(spec, data, settings)
    return spec


@operation
def check_pipeline_files(settings: Settings, caller: Caller, paths: list[Path]) -> list[str]:
    """Every problem in the pipeline files and directories ``paths`` (default: the
    pipelines directory), one line each; empty when all are fine."""
    caller.require(Right.READ)
    targets = paths or [check_pipelines_dir(settings.pipelines.dir)]
    # An empty directory is not "ok": the path is most likely wrong.
    problems = [
        f"{path}: no pipeline files ({', '.join('*' + s for s in SUFFIXES)}) in this directory"
        for path in targets
        if path.is_dir() and not any(p.suffix in SUFFIXES for p in path.iterdir())
    ]
    return problems + validate_paths(targets, default_registry())


@operation
def list_agents(settings: Settings, caller: Caller) -> list[AgentView]:
    """The installed agents, by name."""
    caller.require(Right.READ)
    return [agent_view(agent) for agent in sorted(default_registry().all(), key=lambda a: a.name)]


def _find(catalog: Catalog, name: str) -> Pipeline:
    if name in catalog.pipelines:
        return catalog.pipelines[name]
    if name in catalog.broken:
        raise BrokenPipeline(name, catalog.broken[name])
    raise UnknownPipeline(name, sorted(catalog.pipelines))


def _catalog(settings: Settings) -> Catalog:
    # Loading parses and checks every file (about a millisecond each); listing the directory
    # and a stat per file cost a submit tens of microseconds, so a burst of submits lists it
    # once a second, and a changed file is picked up within a second.
    cached = _fresh(settings.pipelines.dir)
    if cached is not None:
        return cached
    # One thread loads, the others wait for its catalog: an API process's first requests
    # would otherwise each load it, at once, on one GIL.
    with _loading:
        cached = _fresh(settings.pipelines.dir)
        if cached is not None:
            return cached
        now = time.monotonic()
        with _lock:
            known = _loaded.get(settings.pipelines.dir)
        directory = check_pipelines_dir(settings.pipelines.dir)
        signature = _signature(directory)
        if known is not None and known[0] == signature:
            catalog = known[2]
        else:
            catalog = load_catalog(directory, default_registry())
        with _lock:
            _loaded[directory] = (signature, now, catalog)
        return catalog


def _fresh(directory: Path) -> Catalog | None:
    """The directory's catalog, if its files were looked at within the last second."""
    with _lock:
        cached = _loaded.get(directory)
    if cached is not None and time.monotonic() - cached[1] < _RESCAN_S:
        return cached[2]
    return None


def _signature(directory: Path) -> _Signature:
    entries = []
    with os.scandir(directory) as found:
        for entry in found:
            if os.path.splitext(entry.name)[1] in SUFFIXES and entry.is_file():
                stat = entry.stat()
                entries.append((entry.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(entries))
