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
    from hive.db.migrate import upgrade

    upgrade()
    click.echo("database is at the newest schema")
