"""The ``hive`` command: this module assembles the area modules' commands under ``main``.

Each area module (processes, runs, dlq, maintenance, catalog, db) imports only
:mod:`hive.cli.base` and the layers below the CLI, never another area module.
"""

from __future__ import annotations

import click

from hive.cli.base import HiveGroup, exit_on_sigterm
from hive.cli.catalog import agents, pipelines
from hive.cli.db import db
from hive.cli.dlq import dlq
from hive.cli.maintenance import maintenance
from hive.cli.processes import beat, exporter, flower, worker
from hive.cli.runs import runs, submit

__all__ = ["main"]


@click.group(cls=HiveGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hive")
def main() -> None:
    """Hive: run pipelines of agent steps on Celery workers, recorded in PostgreSQL."""
    exit_on_sigterm()


for _command in (
    worker,
    beat,
    flower,
    exporter,
    db,
    agents,
    pipelines,
    submit,
    runs,
    dlq,
    maintenance,
):
    main.add_command(_command)
