"""The plumbing of the ``hive`` command: every mistake is one line on stderr, never a traceback.

Settings are checked when a command runs, after its options are parsed, so ``--help`` works
even when a ``HIVE_*`` variable is malformed.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any, NoReturn

import click

from hive.errors import DatabaseNotMigrated, HiveError, ServiceUnavailable, SettingsError

EXIT_USER_ERROR = 1


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USER_ERROR)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks run (a maintenance command
    killed by ``timeout`` would otherwise keep its Redis lock until the lock's TTL)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class _UsageLine(click.ClickException):
    """A click usage error, shown as one line like every other mistake."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _one_line(exc: click.UsageError) -> click.ClickException:
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc  # a group without a subcommand shows its help
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
    return _UsageLine(exc.format_message().rstrip(".") + hint)


def translate(exc: Exception) -> HiveError | None:
    """A server error that escaped the library, as the HiveError naming its setting."""
    import kombu.exceptions
    import psycopg2
    import redis
    from psycopg2 import errorcodes
    from sqlalchemy.exc import DBAPIError

    from hive.db.engine import unavailable
    from hive.settings import get_settings

    if isinstance(exc, redis.RedisError | kombu.exceptions.OperationalError):
        return ServiceUnavailable("HIVE_BROKER_URL", (str(exc).splitlines() or ["?"])[0])
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, psycopg2.Error):
        return None
    if orig.pgcode == errorcodes.UNDEFINED_TABLE:
        return DatabaseNotMigrated(get_settings().database.name)
    if isinstance(orig, psycopg2.OperationalError | psycopg2.InterfaceError):
        return unavailable(exc)
    if str(orig).startswith("invalid dsn"):
        return SettingsError("HIVE_DATABASE_URL", str(orig).strip().splitlines()[0])
    return None


class HiveCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        from hive.settings import get_settings

        get_settings()  # a malformed HIVE_* variable stops every command here
        return super().invoke(ctx)


class HiveGroup(click.Group):
    """Turns Hive's errors into one line on stderr and a non-zero exit, never a traceback."""

    command_class = HiveCommand
    group_class = type  # subgroups are HiveGroups too

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HiveError as exc:
            fail(str(exc))
        except click.UsageError as exc:
            raise _one_line(exc) from None
        except Exception as exc:
            translated = translate(exc)
            if translated is None:
                raise
            fail(str(translated))
