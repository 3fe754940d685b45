"""Every command of the `hive` tree has a working --help."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from hive.cli import main
from hive.settings import get_settings


def _paths(command: click.Command, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _paths(sub, (*prefix, name))


COMMANDS = list(_paths(main))


def test_the_command_tree_has_the_documented_commands() -> None:
    expected = {
        ("worker",),
        ("beat",),
        ("flower",),
        ("exporter",),
        ("submit",),
        ("db", "upgrade"),
        ("runs", "show"),
        ("runs", "list"),
        ("pipelines", "list"),
        ("pipelines", "validate"),
        ("agents", "list"),
    }
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "hive")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="hive")

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(('hive', *path))} "), result.output
    # Every command says what it is for.
    command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert (command.help or "").strip(), f"`hive {' '.join(path)}` has no help text"
    assert command.help.strip().splitlines()[0] in " ".join(result.output.split())


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "hive")
def test_every_command_has_help_even_while_a_setting_is_malformed(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_LEASE_GRACE_S", "abc")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, [*path, "--help"], prog_name="hive")
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: hive"), result.output


def test_runs_list_offers_every_run_status() -> None:
    from hive.statuses import RunStatus

    status = next(p for p in main.commands["runs"].commands["list"].params if p.name == "status")

    assert isinstance(status.type, click.Choice)
    assert list(status.type.choices) == [s.value for s in RunStatus]


def test_help_imports_neither_sqlalchemy_nor_celery() -> None:
    """`hive ... --help` stays cheap: the drivers are imported by the commands that run."""
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hive.cli import main\n"
        f"for path in {COMMANDS!r}:\n"
        "    result = CliRunner().invoke(main, [*path, '--help'])\n"
        "    assert result.exit_code == 0, (path, result.output)\n"
        "    heavy = [m for m in ('sqlalchemy', 'celery', 'psycopg2') if m in sys.modules]\n"
        "    assert not heavy, (path, heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
