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
    from hive import service
    from hive.settings import get_settings

    rows = [
        (a.name, a.version, a.options.queue, ", ".join(a.input_model.model_fields))
        for a in service.list_agents(get_settings(), service.OPERATOR)
    ]
    table(["NAME", "VERSION", "QUEUE", "INPUT"], rows)


@group()
def pipelines() -> None:
    """Pipelines in HIVE_PIPELINES_DIR."""


@pipelines.command("list")
def pipelines_list() -> None:
    """Every pipeline with its version and steps."""
    from hive import service
    from hive.settings import get_settings

    found = service.list_pipelines(get_settings(), service.OPERATOR)
    rows = [
        (p.name, str(p.version), str(len(p.steps)), p.source)
        for p in sorted(found.values(), key=lambda p: p.name)
    ]
    table(["NAME", "VERSION", "STEPS", "FILE"], rows)


@pipelines.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def pipelines_validate(paths: tuple[Path, ...]) -> None:
    """Check pipeline files (default: HIVE_PIPELINES_DIR); exit 1 listing every problem."""
    from hive import service
    from hive.settings import get_settings

    problems = service.check_pipeline_files(get_settings(), service.OPERATOR, list(paths))
    if problems:
        for line in problems:
            click.echo(line, err=True)
        sys.exit(EXIT_USER_ERROR)
    click.echo("ok")
