"""The plumbing of the ``hive`` command, shared by every area module of it: errors and exit
codes (every mistake is one line on stderr, never a traceback), and the parsing of options
that more than one command takes (run ids, ``--since``, JSON input), each done once here.

Settings are checked when a command runs, after its options are parsed, so ``--help`` works
even when a ``HIVE_*`` variable is malformed. Nothing heavy (SQLAlchemy, Celery) is imported
at module level, here or in any area module: ``hive --help`` stays cheap.
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from hive.errors import HiveError, InvalidArgument

# A value that is wrong (an unknown pipeline, input that does not fit, a server that does not
# answer): 1. A command line that does not parse (an unknown option, a malformed run id): 2,
# as click does.
EXIT_USER_ERROR = 1
EXIT_USAGE = 2
# Ctrl-C, as shells report a process SIGINT ended (128 + 2).
EXIT_INTERRUPTED = 130


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

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _one_line(exc: click.UsageError) -> click.ClickException:
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return exc  # a group without a subcommand shows its help
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
    return _UsageLine(exc.format_message().rstrip(".") + hint)


def _check_utf8(args: list[str]) -> None:
    """Python hands on bytes of argv that are not UTF-8 as lone surrogates, which no
    database, Redis key or JSON document takes: one usage line here, for every command,
    rather than an encoding traceback wherever the value lands."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise _UsageLine(f"the argument '{shown}' is not UTF-8 text") from None


class HiveCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        import logging

        from hive.logs import configure_logging
        from hive.settings import get_settings

        get_settings()  # a malformed HIVE_* variable stops every command here
        # Records in the farm's format, with their ids. A one-shot command's answer is its
        # output: only warnings and errors go to stderr beside it. The long-running
        # processes configure again, at their --loglevel.
        configure_logging(at_least=logging.WARNING)
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
        if parent is None:
            _check_utf8(args)
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
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # click's own: --help, a usage line; translating would import the drivers
        except Exception as exc:
            from hive.service import translate_failure

            translated = translate_failure(exc)
            if translated is None:
                raise
            fail(str(translated))


# --------------------------------------------------------------------------- shared options


class RunIdType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A run id: a UUID. Anything else is a usage mistake (exit 2), for every command."""

    name = "run_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, uuid.UUID):
            return value
        try:
            return uuid.UUID(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a run id (a UUID)", param, ctx)


RUN_ID = RunIdType()

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(value: str) -> timedelta | None:
    """``30s``, ``10m``, ``2h``, ``7d`` as a timedelta; None if not of that shape.

    Raises:
        OverflowError: too long for a timedelta.
    """
    match = _DURATION.match(value.strip())
    if not match:
        return None
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def duration_text(seconds: float) -> str:
    """``seconds`` as a duration the options take: ``30d``, ``12h``, ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:g}s"


class DurationType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A duration such as ``30s``, ``10m``, ``2h`` or ``7d``, as seconds (a float), above
    zero and at most ``maximum_s``: past a sane bound a duration is a typo, and one far
    past it overflows what it is added to (a timestamp, a Redis expiry)."""

    name = "duration"

    def __init__(self, maximum_s: float) -> None:
        self.maximum_s = maximum_s

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            parsed = _duration(str(value))
        except (OverflowError, ValueError):
            parsed = None
        if parsed is None:
            self.fail(f"{value!r} is not a duration (30s, 10m, 2h, 7d)", param, ctx)
        if not parsed:
            # A TTL, an expiry or a breaker's opening of no time at all: never meant.
            self.fail(f"{value!r} is no time at all; give a duration above zero", param, ctx)
        if parsed.total_seconds() > self.maximum_s:
            self.fail(
                f"{value!r} is more than the maximum, {duration_text(self.maximum_s)}", param, ctx
            )
        return parsed.total_seconds()


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` without NaN and infinity, which it lets through (NaN compares
    false with every bound): a wait of ``nan`` seconds would never end, and a health check
    ``--within nan`` never fail. Seconds handed to a socket or a sleep take a ``max`` too:
    past about 3e11 s they overflow the platform's ``time_t``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def parse_since(value: str) -> datetime:
    """``30m``, ``2h``, ``7d`` (ago) or an ISO-8601 timestamp."""
    try:
        ago = _duration(value)
        if ago is not None:
            return datetime.now(UTC) - ago
    except (OverflowError, ValueError):
        raise click.BadParameter(f"{value!r} is too far back", param_hint="--since") from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO timestamp",
            param_hint="--since",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_json(value: str, option: str = "--input") -> Any:
    """``value`` as JSON, or the JSON file named after ``@``."""
    where = option
    if value.startswith("@"):
        if not value[1:]:
            fail(f"{option}: give a file name after @ ({option} @run.json)")
        path = Path(value[1:])
        where = str(path)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"{option}: cannot read {path}: {exc.strerror}")
        except UnicodeDecodeError:
            fail(f"{option}: cannot read {path}: not UTF-8 text")
    try:
        return json.loads(value, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        fail(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:
        fail(f"{where}: not valid JSON: {exc}")


def _no_constant(name: str) -> float:
    # Python's json reads NaN and Infinity; JSON (and PostgreSQL's jsonb) has no such values.
    raise ValueError(f"{name} is not a JSON value")


# --------------------------------------------------------------------------- output

JSON_HELP = "Print JSON: the field names of the Python client and the HTTP API."


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` (as ``as_json``), for every list and show command."""
    return click.option("--json", "as_json", is_flag=True, help=JSON_HELP)(func)


def echo_json(value: Any) -> None:
    """A view's ``to_json()`` (or a list of them) on stdout."""
    click.echo(json.dumps(value, indent=2))


def short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def default_worker_name() -> str:
    """The node name `hive worker` takes without --hostname, and `hive healthcheck worker`
    pings: one per host (a container's host name is its own)."""
    import socket

    return f"hive@{socket.gethostname()}"


def check_listen(host: str, port: int, host_setting: str, port_setting: str) -> None:
    """Fail in one line naming the setting at fault when ``host:port`` cannot be listened
    on, before handing it to a server (uvicorn, Flower's tornado) that would log the error
    among its start-up lines or raise it as a traceback. Bound as they bind (SO_REUSEADDR,
    IPv6 for an address with a colon)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            # A port taken or privileged is the port's fault; anything else the address's.
            taken = exc.errno in (errno.EADDRINUSE, errno.EACCES)
            at_fault = port_setting if taken else host_setting
            fail(f"{at_fault}: cannot listen on {host}:{port}: {exc.strerror}")


@contextmanager
def as_typed(options: Mapping[str, str]) -> Iterator[None]:
    """The block's :class:`~hive.errors.InvalidArgument`, each problem that starts by naming
    an argument of the service (``ttl_s``, the Python client's and the API's name for it)
    naming instead the option the user typed (``--ttl``); ``options`` maps the one to the
    other, as the API's ``problems_at`` maps them to the request's places."""
    try:
        yield
    except InvalidArgument as exc:
        raise InvalidArgument([_typed(problem, options) for problem in exc.problems]) from None


def _typed(problem: str, options: Mapping[str, str]) -> str:
    for name, option in options.items():
        if re.match(rf"{re.escape(name)}\b", problem):
            return option + problem[len(name) :]
    return problem


def check_servers() -> None:
    """Fail now, naming the server, rather than retry for HIVE_DB_RETRY_S (holding a lock)."""
    from hive import service
    from hive.settings import get_settings

    service.check_servers(get_settings())


def command(name: str | None = None, **attrs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """``click.command`` for a top-level ``hive`` command: settings are checked before it runs."""
    return click.command(name, cls=HiveCommand, **attrs)


def group(name: str | None = None, **attrs: Any) -> Callable[[Callable[..., Any]], click.Group]:
    """``click.group`` for a ``hive`` command group: its commands check settings, and any
    mistake is one line."""
    return click.group(name, cls=HiveGroup, **attrs)
