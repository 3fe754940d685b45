"""Every duration option of `hive` refuses an absurd duration in one line naming the option
and its maximum, before anything is asked of a server: far past a sane bound a duration
overflows what it is added to (a Redis expiry, a timestamp, a socket's timeout)."""

from __future__ import annotations

import importlib
import os

import pytest

from hive.cli.base import duration_text
from hive.service import api_keys, service_args
from hive.service import breakers as service_breakers
from tests.support.commands import describe, run_hive

# Nothing is listening there: a command that got past its options would fail otherwise.
_NOWHERE = {
    "HIVE_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/x",
    "HIVE_BROKER_URL": "redis://127.0.0.1:1/0",
}


@pytest.mark.parametrize(
    ("args", "option", "maximum"),
    [
        (["breakers", "open", "service:partner", "--for", "99999999d"], "--for", "30d"),
        (["breakers", "open", "service:partner", "--for", "31d"], "--for", "30d"),
        (["keys", "create", "--all-tenants", "--expires", "99999999d"], "--expires", "36500d"),
        (["services", "register", "s", "--url", "http://h/", "--ttl", "99999999d"], "--ttl",
         "365d"),
        (["services", "register", "s", "--url", "http://h/", "--deregister-after", "366d"],
         "--deregister-after", "365d"),
        (["healthcheck", "flower", "--timeout", "1e300"], "--timeout", "3600"),
        (["status", "--watch", "--interval", "1e300"], "--interval", "3600"),
    ],
    ids=["breaker-for", "breaker-for-31d", "key-expires", "service-ttl", "deregister-after",
         "healthcheck-timeout", "status-interval"],
)  # fmt: skip
@pytest.mark.timeout(60)
def test_a_duration_above_its_maximum_is_refused_in_one_line(
    args: list[str], option: str, maximum: str
) -> None:
    result = run_hive(*args, env={**os.environ, **_NOWHERE})
    assert result.returncode == 2, describe(result)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: Invalid value for '{option}': "), line
    assert maximum in line, line
    assert "Traceback" not in result.stderr


def test_the_cli_maxima_are_the_service_layers() -> None:
    # The CLI imports no service module until a command runs, so it keeps its own copies.
    # (hive.cli's groups shadow their modules' names: import the modules by path.)
    cli_breakers, cli_keys, cli_services = (
        importlib.import_module(f"hive.cli.{name}") for name in ("breakers", "keys", "services")
    )
    assert cli_breakers.OPEN_FOR_MAX_S == service_breakers.OPEN_FOR_MAX_S
    assert cli_keys.EXPIRES_MAX_S == api_keys.EXPIRES_MAX_S
    assert cli_services.DURATION_MAX_S == service_args.DURATION_MAX_S
    assert duration_text(service_breakers.OPEN_FOR_MAX_S) == "30d"
    assert (duration_text(90), duration_text(7200), duration_text(1.5)) == ("90s", "2h", "1.5s")
