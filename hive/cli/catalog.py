"""``hive pipelines`` and ``hive agents``: what this farm can run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hive.cli.base import EXIT_USER_ERROR, group, table


@group()
def agents() -> None:
    """Installed agents."""


@agents.command("list")
def agents_list() -> None:
    """Name, version, queue and input fields of every agent."""
    from hive.agents.registry import default_registry

    rows = [
        (a.name, a.version, a.options.queue, ", ".join(a.input_model.model_fields))
        for a in default_registry().all()
    ]
    table(["NAME", "VERSION", "QUEUE", "INPUT"], rows)


@group()
def pipelines() -> None:
    """Pipelines in HIVE_PIPELINES_DIR."""


@pipelines.command("list")
def pipelines_list() -> None:
    """Every pipeline with its version and steps."""
    from hive.agents.registry import default_registry
    from hive.pipelines import load_pipelines
    from hive.preflight import check_pipelines_dir

    found = load_pipelines(check_pipelines_dir(), default_registry())
    rows = [
        (p.name, str(p.version), str(len(p.steps)), p.source)
        for p in sorted(found.values(), key=lambda p: p.name)
    ]
    table(["NAME", "VERSION", "STEPS", "FILE"], rows)


@pipelines.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def pipelines_validate(paths: tuple[Path, ...]) -> None:
    """Check pipeline files (default: HIVE_PIPELINES_DIR); exit 1 listing every problem."""
    from hive.agents.registry import default_registry
    from hive.pipelines import validate_paths
    from hive.pipelines.loader import SUFFIXES
    from hive.preflight import check_pipelines_dir

    targets = list(paths) or [check_pipelines_dir()]
    # An empty directory is not "ok": the path is most likely wrong.
    problems = [
        f"{path}: no pipeline files ({', '.join('*' + s for s in SUFFIXES)}) in this directory"
        for path in targets
        if path.is_dir() and not any(p.suffix in SUFFIXES for p in path.iterdir())
    ]
    problems += validate_paths(targets, default_registry())
    if problems:
        for line in problems:
            click.echo(line, err=True)
        sys.exit(EXIT_USER_ERROR)
    click.echo("ok")
