"""The ``hive`` command: this module assembles the area modules' commands under ``main``.

Each area module (processes, runs, dlq, approvals, maintenance, catalog, db, services,
workers, status, usage, breakers, budgets, healthcheck, keys, serve) imports only
:mod:`hive.cli.base` and the layers below the CLI, never another area module.
"""

from __future__ import annotations

import click

from hive.cli.approvals import approvals
from hive.cli.base import HiveGroup, exit_on_sigterm
from hive.cli.breakers import breakers
from hive.cli.budgets import budgets
from hive.cli.catalog import agents, pipelines
from hive.cli.db import db
from hive.cli.dlq import dlq
from hive.cli.healthcheck import healthcheck
from hive.cli.keys import audit, keys
from hive.cli.maintenance import maintenance
from hive.cli.processes import beat, exporter, flower, worker
from hive.cli.runs import runs, submit
from hive.cli.serve import api
from hive.cli.services import services
from hive.cli.status import status
from hive.cli.usage import usage
from hive.cli.workers import workers

__all__ = ["main"]


@click.group(cls=HiveGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hive")
def main() -> None:
    """Hive: run pipelines of agent steps on Celery workers, recorded in PostgreSQL."""
    exit_on_sigterm()


_COMMANDS = (
    worker, beat, flower, exporter, db, agents, pipelines, submit, runs, dlq, approvals,
    maintenance, services, workers, status, usage, breakers, budgets, healthcheck, keys,
    audit, api,
)  # fmt: skip
for _command in _COMMANDS:
    main.add_command(_command)
