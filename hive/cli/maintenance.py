"""``hive maintenance``: run a maintenance task now, beside or instead of beat."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hive.cli.base import EXIT_USER_ERROR, check_servers, group


@group()
def maintenance() -> None:
    """Run a maintenance task now (beat runs them on a schedule)."""


@maintenance.command("recover")
def maintenance_recover() -> None:
    """Take back stalled steps, send what was never sent, expire overdue runs."""
    from hive import service
    from hive.settings import get_settings

    check_servers()
    _report(service.recover(get_settings(), service.OPERATOR), "recover")


@maintenance.command("purge")
def maintenance_purge() -> None:
    """Delete finished runs and events older than HIVE_RETENTION_DAYS, audit records older
    than HIVE_AUDIT_RETENTION_DAYS."""
    from hive import service
    from hive.settings import get_settings

    check_servers()
    _report(service.purge(get_settings(), service.OPERATOR), "purge")


@maintenance.command("health")
def maintenance_health() -> None:
    """Check the service registry now: TTLs missed, health URLs probed."""
    from hive import service
    from hive.settings import get_settings

    check_servers()
    _report(service.health_sweep(get_settings(), service.OPERATOR), "health")


@maintenance.command("cleanup")
def maintenance_cleanup() -> None:
    """Deregister instances critical for longer than their deregister-after."""
    from hive import service
    from hive.settings import get_settings

    check_servers()
    _report(service.cleanup_services(get_settings(), service.OPERATOR), "cleanup")


def _report(result: dict[str, Any] | None, name: str) -> None:
    if result is None:
        click.echo(f"{name} is already running elsewhere; nothing done", err=True)
        sys.exit(EXIT_USER_ERROR)
    click.echo(json.dumps(result))
