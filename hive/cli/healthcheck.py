"""``hive healthcheck``: one check per long-running process, for a supervisor.

Each prints one line and exits 0 when the process does its job, 1 when it does not (what
docker compose's ``healthcheck`` and Kubernetes' exec probes read); a command line that
does not parse exits 2, as every ``hive`` command does.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from hive.cli.base import EXIT_USER_ERROR, FiniteRange, default_worker_name, group

_TIMEOUT = click.option(
    "--timeout",
    "timeout_s",
    type=FiniteRange(min=0.1, max=3600),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the answer (at most 3600).",
)
_ADDRESS = click.option(
    "--address",
    default=None,
    help="Where the process listens [default: this host].",
)


@group()
def healthcheck() -> None:
    """Is each Hive process on this host doing its job? Exit 0 if so, 1 if not."""


@healthcheck.command("worker")
@click.option(
    "--node",
    "-n",
    default=None,
    help="The worker's node name [default: hive@<this host>, as `hive worker` names itself].",
)
@_TIMEOUT
def healthcheck_worker(node: str | None, timeout_s: float) -> None:
    """The worker answers Celery's ping (through the broker)."""
    from hive import service
    from hive.settings import get_settings

    name = node or default_worker_name()
    _report(service.ping_worker(get_settings(), service.OPERATOR, name, timeout_s=timeout_s))


@healthcheck.command("beat")
@click.option(
    "--within",
    "within_s",
    type=FiniteRange(min=1),
    default=None,
    help="Seconds within which a maintenance task must have succeeded "
    "[default: three times the shortest interval].",
)
def healthcheck_beat(within_s: float | None) -> None:
    """A maintenance task beat sends succeeded lately (read from PostgreSQL)."""
    from hive import service
    from hive.settings import get_settings

    _report(service.beat_health(get_settings(), service.OPERATOR, within_s=within_s))


@healthcheck.command("flower")
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@_ADDRESS
@_TIMEOUT
def healthcheck_flower(port: int, address: str | None, timeout_s: float) -> None:
    """Flower answers with HIVE_FLOWER_BASIC_AUTH, and refuses to answer without it."""
    from hive import service
    from hive.settings import get_settings

    health = service.flower_health(
        get_settings(), address or "127.0.0.1", port, timeout_s=timeout_s
    )
    _report(health)


@healthcheck.command("exporter")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="[default: HIVE_EXPORTER_PORT, 9809]",
)
@_ADDRESS
@_TIMEOUT
def healthcheck_exporter(port: int | None, address: str | None, timeout_s: float) -> None:
    """`hive exporter` serves its figures."""
    from hive import service
    from hive.settings import get_settings

    metrics = get_settings().metrics
    _report(
        service.exporter_health(
            address or metrics.address, port or metrics.exporter_port, timeout_s=timeout_s
        )
    )


@healthcheck.command("api")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[default: HIVE_API_PORT, 8080]"
)
@_ADDRESS
@_TIMEOUT
def healthcheck_api(port: int | None, address: str | None, timeout_s: float) -> None:
    """`hive api` is ready: /readyz answers 200 (PostgreSQL and Redis reachable)."""
    from hive import service
    from hive.settings import get_settings

    api = get_settings().api
    _report(service.api_health(address or api.host, port or api.port, timeout_s=timeout_s))


def _report(health: Any) -> None:
    if health.healthy:
        click.echo(f"healthy: {health.detail}")
        return
    click.echo(f"unhealthy: {health.detail}", err=True)
    sys.exit(EXIT_USER_ERROR)
