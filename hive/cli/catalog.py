"""``hive pipelines`` and ``hive agents``: what this farm can run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hive.cli.base import EXIT_USER_ERROR, echo_json, group, json_option, table


@group()
def agents() -> None:
    """Installed agents."""


@agents.command("list")
@json_option
def agents_list(as_json: bool) -> None:
    """Name, version, queue and input fields of every agent."""
    from hive import service
    from hive.settings import get_settings

    views = service.list_agents(get_settings(), service.OPERATOR)
    if as_json:
        echo_json([view.to_json() for view in views])
        return
    rows = [
        (a.name, a.version, a.queue, ", ".join(a.input_schema.get("properties", {}))) for a in views
    ]
    table(["NAME", "VERSION", "QUEUE", "INPUT"], rows)


@group()
def pipelines() -> None:
    """Pipelines in HIVE_PIPELINES_DIR."""


@pipelines.command("list")
@json_option
def pipelines_list(as_json: bool) -> None:
    """Every pipeline with its version and steps. A file that does not load is named on
    stderr with its problems, after the others are listed, and the exit status is 1."""
    from hive import service
    from hive.settings import get_settings

    settings = get_settings()
    found = service.list_pipelines(settings, service.OPERATOR)
    problems = service.pipeline_problems(settings, service.OPERATOR)
    views = [service.pipeline_view(found[name]) for name in sorted(found)]
    if as_json:
        echo_json([view.to_json() for view in views])
    else:
        rows = [(p.name, str(p.version), str(len(p.steps)), p.source) for p in views]
        table(["NAME", "VERSION", "STEPS", "FILE"], rows)
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_USER_ERROR)


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
