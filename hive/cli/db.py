"""``hive db``: database administration."""

from __future__ import annotations

import click

from hive.cli.base import group


@group()
def db() -> None:
    """Database administration."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations (safe to run again)."""
    from hive import service
    from hive.settings import get_settings

    service.upgrade_schema(get_settings(), service.OPERATOR)
    click.echo("database is at the newest schema")
