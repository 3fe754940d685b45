"""The `hive` command reports configuration and connection problems in one line naming the
setting at fault, never with a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import db
from tests.support.commands import describe, run_hive

UNREACHABLE_DB = "postgresql+psycopg2://postgres@127.0.0.1:1/x"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("error: "), describe(result)
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HIVE_LEASE_GRACE_S", "abc"),
        ("HIVE_LEASE_GRACE_S", "-1"),
        ("HIVE_DATABASE_URL", "mysql://root@localhost/hive"),
        ("HIVE_BROKER_URL", "amqp://guest@localhost//"),
        # Celery's kombu takes no query parameter but ssl_*; redis-py takes those only
        # with TLS: either way, a traceback at the first publish.
        ("HIVE_BROKER_URL", "redis://localhost:6379/0?socket_timeout=5"),
        ("HIVE_BROKER_URL", "redis://localhost:6379/0?ssl_cert_reqs=none"),
        ("HIVE_BROKER_URL", "rediss://localhost:6379/0?ssl_cert_reqs=never"),
        ("HIVE_LOG_FORMAT", "xml"),
        ("HIVE_FLOWER_BASIC_AUTH", "no-colon"),
    ],
)
@pytest.mark.timeout(120)
def test_cli_with_a_malformed_setting_prints_one_line_naming_the_variable(
    variable: str, value: str, hive_env: dict[str, str]
) -> None:
    env = {**_base_env(hive_env), variable: value}

    result = run_hive("runs", "list", env=env)

    assert result.returncode == 1, describe(result)
    assert variable in _one_error_line(result)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [["runs", "list"], ["runs", "show", "00000000-0000-0000-0000-000000000000"]],
    ids=["runs-list", "runs-show"],
)
@pytest.mark.timeout(120)
def test_cli_with_an_unreachable_database_prints_one_line_naming_hive_database_url(
    args: list[str], hive_env: dict[str, str]
) -> None:
    env = {**_base_env(hive_env), "HIVE_DATABASE_URL": UNREACHABLE_DB}

    result = run_hive(*args, env=env)

    assert result.returncode == 1, describe(result)
    assert "HIVE_DATABASE_URL" in _one_error_line(result)


@pytest.mark.timeout(120)
def test_cli_submit_with_an_unreachable_database_prints_one_line_naming_hive_database_url(
    hive_env: dict[str, str],
) -> None:
    env = {**_base_env(hive_env), "HIVE_DATABASE_URL": UNREACHABLE_DB}

    result = run_hive("submit", "doc-triage", "--input", '{"text": "x"}', env=env)

    assert result.returncode == 1, describe(result)
    assert "HIVE_DATABASE_URL" in _one_error_line(result)
    assert result.stdout == ""


@pytest.mark.timeout(120)
def test_cli_runs_show_of_an_unknown_run_prints_one_line_and_exits_1(
    hive_env: dict[str, str],
) -> None:
    unknown = "8c9d3f8e-0000-4000-8000-000000000000"

    result = run_hive("runs", "show", unknown, env=_base_env(hive_env))

    assert result.returncode == 1, describe(result)
    assert f"no run with id {unknown}" in _one_error_line(result)


@pytest.mark.timeout(120)
def test_flower_refuses_to_start_without_basic_auth(hive_env: dict[str, str]) -> None:
    env = _base_env(hive_env)
    env.pop("HIVE_FLOWER_BASIC_AUTH", None)
    env.pop("FLOWER_BASIC_AUTH", None)

    result = run_hive("flower", "--port", "1", env=env, timeout_s=30)

    assert result.returncode != 0, describe(result)
    line = _one_error_line(result)
    assert "HIVE_FLOWER_BASIC_AUTH" in line
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [[], ["worker"], ["beat"], ["flower"], ["submit"], ["runs", "show"], ["db", "upgrade"]],
    ids=lambda args: " ".join(args) or "hive",
)
@pytest.mark.timeout(120)
def test_hive_commands_print_their_help_in_a_real_process(
    args: list[str], hive_env: dict[str, str]
) -> None:
    result = run_hive(*args, "--help", env=_base_env(hive_env))

    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith("Usage: "), describe(result)
    assert result.stderr == ""


@pytest.mark.timeout(120)
def test_the_installed_hive_script_runs_the_same_command(hive_env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("hive")
    assert script.exists(), f"no console script at {script}"

    result = subprocess.run(
        [str(script), "runs", "list", "--help"],
        env=_base_env(hive_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith("Usage: hive runs list"), describe(result)


def _base_env(hive_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **hive_env}


# --------------------------------------------------------------------------- secrets

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/x", ["runs", "list"]),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/x", ["db", "upgrade"]),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/x", ["dlq", "list"]),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/x",
         ["maintenance", "recover"]),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/x",
         ["dlq", "replay", "00000000-0000-0000-0000-000000000000"]),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:port/x", ["runs", "list"]),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:5432/x?nosuch=1",
         ["runs", "list"]),
        ("HIVE_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:1/0",
         ["submit", "echo-one", "--input", '{"text": "x"}']),
        ("HIVE_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:1/0", ["maintenance", "recover"]),
        ("HIVE_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:1/0", ["maintenance", "purge"]),
        ("HIVE_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:port/0", ["runs", "list"]),
        ("HIVE_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:6379/zero", ["runs", "list"]),
        ("HIVE_RESULT_BACKEND", f"http://:{SECRET}@127.0.0.1:1/0", ["runs", "list"]),
    ],
)  # fmt: skip
@pytest.mark.timeout(120)
def test_cli_names_the_variable_of_a_bad_or_unreachable_url_without_its_password(
    variable: str, value: str, args: list[str], env: dict[str, str]
) -> None:
    result = run_hive(*args, env={**env, variable: value}, timeout_s=50)

    assert result.returncode == 1, describe(result)
    assert variable in _one_error_line(result)
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_submit_with_an_unreachable_broker_stores_no_run(env: dict[str, str]) -> None:
    down = {**env, "HIVE_BROKER_URL": UNREACHABLE_REDIS}

    result = run_hive("submit", "echo-one", "--input", '{"text": "x"}', env=down)

    assert "HIVE_BROKER_URL" in _one_error_line(result)
    assert result.stdout == ""
    listed = run_hive("runs", "list", env=env)
    assert listed.stdout.strip().splitlines()[1:] == [], describe(listed)


@pytest.mark.parametrize(
    "args",
    [["runs", "list"], ["submit", "echo-one", "--input", '{"text": "x"}'], ["dlq", "list"]],
    ids=["runs-list", "submit", "dlq-list"],
)
@pytest.mark.timeout(120)
def test_cli_on_a_database_without_hive_tables_says_to_run_db_upgrade(
    args: list[str], hive_env: dict[str, str]
) -> None:
    from tests.support import services

    name, url = services.create_database()
    try:
        result = run_hive(*args, env={**_base_env(hive_env), "HIVE_DATABASE_URL": url})
    finally:
        services.drop_database(name)

    assert result.returncode == 1, describe(result)
    line = _one_error_line(result)
    assert "HIVE_DATABASE_URL" in line
    assert "hive db upgrade" in line


# --------------------------------------------------------------------------- user mistakes


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["--bogus"],
        ["worker", "--pool", "gevent"],
        ["worker", "--concurrency", "0"],
        ["worker", "--loglevel", "LOUD"],
        ["worker", "--queues", " , "],
        ["worker", "--queues", "a,,b"],
        ["worker", "--queues", "a,"],
        ["worker", "--queues", "a,b,a"],
        ["worker", "--queues", "my queue"],
        ["beat", "--loglevel", "LOUD"],
        ["flower", "--port", "-1", "--insecure"],
        ["runs", "list", "--status", "bogus"],
        ["runs", "list", "--limit", "-1"],
        ["submit", "echo-one", "--input", "{}", "--priority", "urgent"],
        ["submit", "echo-one", "--input", '{"text": "x"}', "--timeout", "5"],
        ["submit", "echo-one", "--input", '{"text": "x"}', "--wait", "--timeout", "-1"],
        # Not a number of seconds: a wait that never ends, a health check that never fails.
        ["submit", "echo-one", "--input", '{"text": "x"}', "--wait", "--timeout", "nan"],
        ["submit", "echo-one", "--input", '{"text": "x"}', "--deadline", "inf"],
        ["healthcheck", "beat", "--within", "nan"],
        ["healthcheck", "worker", "--timeout", "inf"],
        ["status", "--watch", "--interval", "nan"],
        ["budgets", "set", "acme", "--daily-usd", "nan"],
        ["dlq", "replay", "00000000-0000-0000-0000-000000000000", "--deadline", "nan"],
        ["dlq", "replay", "00000000-0000-0000-0000-000000000000", "--deadline", "-1"],
        ["dlq", "replay", "--all", "--pipeline", "echo-one", "--deadline", "inf"],
        ["dlq", "list", "--since", "99999999999d"],
        ["dlq", "show", "not-a-uuid"],
        ["workers", "list", "--state", "gone"],
        # A duration of no time: named by its option, not by the service's ttl_s.
        ["services", "register", "x", "--url", "http://x", "--ttl", "0s"],
        ["keys", "create", "--tenant", "T", "--role", "viewer", "--expires", "0d"],
    ],
    ids=lambda args: " ".join(args),
)
@pytest.mark.timeout(120)
def test_a_usage_mistake_prints_one_line_and_exits_2(
    args: list[str], hive_env: dict[str, str]
) -> None:
    result = run_hive(*args, env=_base_env(hive_env))

    assert result.returncode == 2, describe(result)
    assert "--help" in _one_error_line(result)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command", [["runs", "show"], ["runs", "cancel"], ["dlq", "show"], ["dlq", "replay"]]
)
@pytest.mark.timeout(120)
def test_a_malformed_run_id_is_the_same_usage_line_for_every_command(
    command: list[str], hive_env: dict[str, str]
) -> None:
    result = run_hive(*command, "123", env=_base_env(hive_env))

    assert result.returncode == 2, describe(result)
    line = _one_error_line(result)
    assert "'123' is not a run id (a UUID)" in line
    assert f"{' '.join(command)} --help" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["submit", "echo-one", "--input", "@"], "file name after @"),
        (["submit", "echo-one", "--input", "NaN"], "NaN is not a JSON value"),
        (["submit", "echo-one", "--input", '{"text": Infinity}'], "Infinity"),
        (["submit", "no-such-pipeline", "--input", "{}"], "unknown pipeline"),
        (["submit", "echo-one", "--input", '{"text": 5}'], "input.text"),
        (["beat", "--schedule", "/proc/no-such-dir/schedule"], "--schedule"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
@pytest.mark.timeout(120)
def test_a_bad_value_prints_one_line_naming_it_and_stores_nothing(
    args: list[str], needle: str, env: dict[str, str]
) -> None:
    result = run_hive(*args, env=env)

    assert result.returncode == 1, describe(result)
    assert needle in _one_error_line(result)
    assert result.stdout == ""
    listed = run_hive("runs", "list", env=env)
    assert listed.stdout.strip().splitlines()[1:] == [], describe(listed)


LONG = "t" * 300
NO_RUN = "00000000-0000-0000-0000-000000000000"
ECHO = ["submit", "echo-one", "--input", '{"text": "x"}']


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([*ECHO, "--budget-usd", "1e15"], "--budget-usd must be a positive amount of USD"),
        ([*ECHO, "--deadline", "1e300"], "--deadline must be a positive number of seconds"),
        (["dlq", "replay", NO_RUN, "--deadline", "1e300"],
         "--deadline must be a positive number of seconds, at most 315360000"),
        (["dlq", "replay", "--all", "--pipeline", "echo-one", "--deadline", "1e300"],
         "--deadline must be a positive number of seconds"),
        ([*ECHO, "--tenant", LONG], "--tenant is 300 characters long; at most 200"),
        ([*ECHO, "--idempotency-key", LONG], "--idempotency-key is 300 characters long"),
        (["budgets", "set", "acme", "--daily-usd", "1e15"], "--daily-usd must be a positive"),
        (["keys", "create", "--all-tenants", "--name", LONG], "--name must be text of at most"),
        (["approvals", "reject", NO_RUN, "s", "--reason", " "], "--reason must be non-empty"),
        (["approvals", "reject", NO_RUN, "s", "--reason", "r", "--by", LONG],
         "--by is 300 characters long"),
        (["usage", "--tenant", LONG], "--tenant is 300 characters long"),
    ],
    ids=lambda value: " ".join(a[:12] for a in value) if isinstance(value, list) else "",
)  # fmt: skip
@pytest.mark.timeout(120)
def test_a_refused_value_is_named_by_the_option_typed_not_by_the_apis_field(
    args: list[str], said: str, env: dict[str, str]
) -> None:
    result = run_hive(*args, env=env)

    line = _one_error_line(result)
    assert result.returncode == 1, describe(result)
    assert line.startswith(f"error: {said}"), line
    assert db.scalar("SELECT count(*) FROM runs") == 0


@pytest.mark.timeout(120)
def test_a_reused_idempotency_key_is_named_by_its_option(env: dict[str, str]) -> None:
    first = run_hive(*ECHO, "--idempotency-key", "order-1", env=env)
    assert first.returncode == 0, describe(first)

    again = run_hive(
        "submit", "echo-one", "--input", '{"text": "y"}', "--idempotency-key", "order-1", env=env
    )

    line = _one_error_line(again)
    assert line.startswith("error: --idempotency-key 'order-1' started run "), line
    assert "with another input" in line


@pytest.mark.timeout(120)
def test_submit_input_from_a_file_that_is_not_text_prints_one_line(
    tmp_path: Path, hive_env: dict[str, str]
) -> None:
    binary = tmp_path / "input.json"
    binary.write_bytes(b"\xff\xfe{}")

    result = run_hive("submit", "echo-one", "--input", f"@{binary}", env=_base_env(hive_env))

    assert result.returncode == 1, describe(result)
    assert f"cannot read {binary}: not UTF-8 text" in _one_error_line(result)


@pytest.mark.parametrize(
    "args",
    [["pipelines", "list"], ["pipelines", "validate"], ["submit", "echo-one", "--input", "{}"]],
    ids=["list", "validate", "submit"],
)
@pytest.mark.timeout(120)
def test_a_missing_pipelines_dir_is_named_by_its_variable(
    args: list[str], tmp_path: Path, hive_env: dict[str, str]
) -> None:
    env = {**_base_env(hive_env), "HIVE_PIPELINES_DIR": str(tmp_path / "nowhere")}

    result = run_hive(*args, env=env)

    assert result.returncode == 1, describe(result)
    assert _one_error_line(result).startswith("error: HIVE_PIPELINES_DIR: ")


@pytest.mark.timeout(180)
def test_a_broken_pipeline_file_takes_down_its_own_pipeline_alone(
    tmp_path: Path, env: dict[str, str]
) -> None:
    directory = tmp_path / "pipelines"
    directory.mkdir()
    shutil.copy(Path(env["HIVE_PIPELINES_DIR"]) / "echo-one.yaml", directory)
    (directory / "broken.yaml").write_text("name: broken\nsteps:\n  - id: x\n    agent: nope\n")
    (directory / "garbage.yaml").write_text("name: [unclosed\n")
    env = {**env, "HIVE_PIPELINES_DIR": str(directory)}
    unknown_agent = f"{directory / 'broken.yaml'}: step 'x': agent: unknown agent 'nope'"

    listed = run_hive("pipelines", "list", env=env)
    as_json = run_hive("pipelines", "list", "--json", env=env)
    validated = run_hive("pipelines", "validate", env=env)
    submitted = run_hive("submit", "echo-one", "--input", '{"text": "x"}', env=env)
    to_broken = run_hive("submit", "broken", "--input", "{}", env=env)
    to_garbage = run_hive("submit", "garbage", "--input", "{}", env=env)

    # Listed, with the broken files named on stderr, each problem a line; exit 1.
    assert listed.returncode == as_json.returncode == 1, describe(listed)
    assert [row.split()[0] for row in listed.stdout.splitlines()[1:]] == ["echo-one"]
    assert [p["name"] for p in json.loads(as_json.stdout)] == ["echo-one"]
    errors = listed.stderr.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors), errors
    assert any(line.startswith(f"error: {unknown_agent}") for line in errors), errors
    assert any(line.startswith(f"error: {directory / 'garbage.yaml'}: ") for line in errors)
    assert validated.returncode == 1 and unknown_agent in validated.stderr, describe(validated)
    # The others are served; the broken one is named with its problems, in one line.
    assert submitted.returncode == 0, describe(submitted)
    line = _one_error_line(to_broken)
    assert line.startswith(f"error: pipeline 'broken' cannot be loaded: {directory}/broken.yaml: ")
    assert unknown_agent in line
    assert _one_error_line(to_garbage).startswith(
        f"error: pipeline 'garbage' cannot be loaded: {directory / 'garbage.yaml'}: "
    )
    assert db.scalar("SELECT count(*) FROM runs") == 1


@pytest.mark.timeout(120)
def test_pipelines_validate_of_an_empty_directory_is_not_ok(
    tmp_path: Path, hive_env: dict[str, str]
) -> None:
    result = run_hive("pipelines", "validate", str(tmp_path), env=_base_env(hive_env))

    assert result.returncode == 1, describe(result)
    assert "no pipeline files" in result.stderr
    assert result.stdout == ""


@pytest.mark.timeout(120)
def test_help_works_while_a_setting_is_malformed(hive_env: dict[str, str]) -> None:
    env = {**_base_env(hive_env), "HIVE_LEASE_GRACE_S": "abc"}

    result = run_hive("worker", "--help", env=env)

    assert result.returncode == 0, describe(result)
    assert result.stdout.startswith("Usage: "), describe(result)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HIVE_BROKER_URL", f"redis://:{SECRET}@127.0.0.1:1/0"),
        ("HIVE_DATABASE_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/x"),
    ],
)
@pytest.mark.parametrize("command", ["worker", "beat"])
@pytest.mark.timeout(120)
def test_worker_and_beat_keep_retrying_an_unreachable_server_naming_its_variable(
    command: str, variable: str, value: str, hive_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.support.processes import HiveProcess

    args = [command] if command == "worker" else [command, "--schedule", str(tmp_path / "s")]
    proc = HiveProcess(args, {**_base_env(hive_env), variable: value}, tmp_path / "log")
    try:
        proc.wait_for_log("retrying in 2s", timeout_s=30)
        assert proc.proc.poll() is None
    finally:
        proc.stop()

    log = proc.log()
    assert f"cannot reach the server at {variable}" in log
    assert "Traceback" not in log
    assert SECRET not in log


@pytest.mark.parametrize(
    ("variable", "host", "port_taken"),
    [
        ("HIVE_API_HOST", "no-such-host.invalid", False),  # a name that does not resolve
        ("HIVE_API_HOST", "192.0.2.1", False),  # not an address of this host (TEST-NET-1)
        ("HIVE_API_PORT", "127.0.0.1", True),
    ],
)
@pytest.mark.timeout(120)
def test_api_that_cannot_listen_prints_one_line_naming_the_setting(
    variable: str, host: str, port_taken: bool, hive_env: dict[str, str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        if port_taken:
            taken.listen()
        port = taken.getsockname()[1]
        if not port_taken:
            taken.close()  # free again: only the host is at fault
        env = {**_base_env(hive_env), "HIVE_API_HOST": host, "HIVE_API_PORT": str(port)}
        result = run_hive("api", env=env, timeout_s=60)

    line = _one_error_line(result)
    assert line.startswith(f"error: {variable} "), describe(result)
    assert f"{host}:{port}" in line


@pytest.mark.timeout(120)
def test_beat_names_hive_data_dir_when_its_schedule_cannot_be_kept_there(
    hive_env: dict[str, str],
) -> None:
    env = {**_base_env(hive_env), "HIVE_DATA_DIR": "/proc/no-such-dir"}

    result = run_hive("beat", env=env)

    assert result.returncode == 1, describe(result)
    assert _one_error_line(result).startswith("error: HIVE_DATA_DIR: cannot create /proc/")


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--pipeline", "doc\udcff"],  # the byte 0xff, as Python passes it on
        ["dlq", "list", "--pipeline", "doc\udcff"],
        ["budgets", "show", "acme\udcff"],
        ["submit", "echo-one", "--input", '{"text": "\udcff"}'],
    ],
    ids=["runs-list", "dlq-list", "budgets-show", "submit"],
)
@pytest.mark.timeout(120)
def test_an_argument_that_is_not_utf8_is_a_usage_line(
    args: list[str], hive_env: dict[str, str]
) -> None:
    result = run_hive(*args, env=_base_env(hive_env))

    assert result.returncode == 2, describe(result)
    line = _one_error_line(result)
    assert "is not UTF-8 text" in line and "\\xff" in line, line


@pytest.mark.parametrize(
    ("option", "address", "port_taken"),
    [("--address", "no-such-host.invalid", False), ("--port", "127.0.0.1", True)],
)
@pytest.mark.timeout(120)
def test_flower_that_cannot_listen_prints_one_line_naming_the_option(
    option: str, address: str, port_taken: bool, hive_env: dict[str, str]
) -> None:
    import socket

    env = {**_base_env(hive_env), "HIVE_FLOWER_BASIC_AUTH": "admin:flower-pw"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if port_taken else 1
        result = run_hive("flower", "--address", address, "--port", str(port), env=env)

    line = _one_error_line(result)
    assert line.startswith(f"error: {option}: cannot listen on {address}:{port}: "), line
