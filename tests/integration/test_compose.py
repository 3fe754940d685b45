"""docker-compose.yml and the Dockerfile fit the `hive` command they run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import redis
import yaml

from hive.cli import main
from tests.support.processes import wait_until
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ["migrate", "worker", "beat", "flower"]
SERVICES = ["redis", "postgres", *APP_SERVICES]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    if not COMPOSE.exists():
        pytest.fail(f"{COMPOSE.name} is missing", pytrace=False)
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document["services"]


def _argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert command, "an app service must say which hive command it runs"
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _resolve(argv: list[str]) -> click.Context:
    """Parse ``hive <argv>`` the way the entry point would, down to the leaf command."""
    ctx = click.Context(main, info_name="hive")
    command: click.Command = main
    rest = list(argv)
    while isinstance(command, click.Group):
        assert rest, f"`hive {' '.join(argv)}` stops at a group"
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`hive {' '.join(argv)}`: no command {name!r}"
        command = sub
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=name, parent=ctx)
        else:
            # Parses and validates the options; a bad one raises a click UsageError.
            return command.make_context(name, rest, parent=ctx)
    raise AssertionError("unreachable")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


# The caller's environment compose would see in these tests.
SECRETS = {
    "REDIS_PASSWORD": "redis-pw-123",
    "POSTGRES_PASSWORD": "pg-pw-456",
    "HIVE_FLOWER_BASIC_AUTH": "admin:flower-pw",
}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


class MissingVariable(Exception):
    pass


def _interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's substitution: ${VAR}, ${VAR:-default}, ${VAR:?error} (and the forms without
    the colon), $VAR, and $$ for a literal $."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        found = variables.get(name)
        unset = found is None or (found == "" and operator is not None and ":" in operator)
        if operator and operator.endswith("?") and unset:
            raise MissingVariable(f"{name}: {argument}")
        if operator and operator.endswith("-") and unset:
            return argument or ""
        return found or ""

    return _VARIABLE.sub(value, text)


def _resolved(node: Any, variables: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _resolved(v, variables) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v, variables) for v in node]
    return _interpolate(node, variables) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def resolved(services: dict[str, Any]) -> dict[str, Any]:
    """The services as compose runs them, given SECRETS."""
    result = _resolved(services, SECRETS)
    assert isinstance(result, dict)
    return result


def test_compose_defines_every_service_of_the_farm(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services), sorted(services)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_runs_an_existing_hive_command(
    name: str, services: dict[str, Any]
) -> None:
    ctx = _resolve(_argv(services[name]))

    assert ctx.command.callback is not None


def test_each_app_service_runs_the_command_it_is_named_for(
    services: dict[str, Any],
) -> None:
    paths = {name: _resolve(_argv(services[name])).command_path for name in APP_SERVICES}

    assert paths == {
        "migrate": "hive db upgrade",
        "worker": "hive worker",
        "beat": "hive beat",
        "flower": "hive flower",
    }


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_points_at_the_compose_postgres_and_redis(
    name: str, services: dict[str, Any], resolved: dict[str, Any]
) -> None:
    env = _environment(resolved[name])

    database = urlsplit(env["HIVE_DATABASE_URL"])
    broker = urlsplit(env["HIVE_BROKER_URL"])
    assert database.scheme in ("postgresql", "postgresql+psycopg2")
    assert database.hostname == "postgres"
    assert broker.scheme == "redis"
    assert broker.hostname == "redis"
    assert services["postgres"]["image"].startswith("postgres")
    assert services["redis"]["image"].startswith("redis")


@pytest.mark.parametrize("name", ["worker", "beat", "flower"])
def test_long_running_services_start_after_the_migration(
    name: str, services: dict[str, Any]
) -> None:
    depends_on = services[name].get("depends_on") or {}
    assert "migrate" in depends_on
    if isinstance(depends_on, dict):
        assert depends_on["migrate"].get("condition") == "service_completed_successfully"


@pytest.mark.parametrize("name", ["migrate", "worker", "beat", "flower"])
def test_app_services_wait_for_a_healthy_postgres(name: str, services: dict[str, Any]) -> None:
    depends_on = services[name].get("depends_on")

    assert isinstance(depends_on, dict), "a list form cannot wait for health"
    assert depends_on["postgres"].get("condition") == "service_healthy"
    assert services["postgres"].get("healthcheck", {}).get("test")


@pytest.mark.parametrize("name", ["worker", "beat", "flower"])
def test_long_running_services_wait_for_a_healthy_redis(
    name: str, services: dict[str, Any]
) -> None:
    depends_on = services[name].get("depends_on")

    assert isinstance(depends_on, dict), "a list form cannot wait for health"
    assert depends_on["redis"].get("condition") == "service_healthy"
    assert services["redis"].get("healthcheck", {}).get("test")


def test_the_migration_runs_once_and_is_not_restarted(services: dict[str, Any]) -> None:
    # A restart policy would re-run a successful migration forever; its dependants wait for
    # service_completed_successfully, which needs it to exit.
    assert services["migrate"].get("restart", "no") == "no"


def test_flower_takes_basic_auth_from_the_environment(services: dict[str, Any]) -> None:
    flower = services["flower"]
    ctx = _resolve(_argv(flower))
    auth = _environment(flower).get("HIVE_FLOWER_BASIC_AUTH", "")

    assert not ctx.params.get("insecure"), "flower must not run without authentication"
    assert re.fullmatch(r"\$\{HIVE_FLOWER_BASIC_AUTH:\?[^}]*\}", auth), (
        "take the credentials from the caller's environment and refuse to start without them: "
        f"got {auth!r}"
    )


def test_flower_listens_on_an_address_its_published_port_can_reach(
    services: dict[str, Any],
) -> None:
    flower = services["flower"]
    assert flower.get("ports"), "flower publishes no port"
    address = _resolve(_argv(flower)).params["address"]

    assert address not in ("127.0.0.1", "localhost", "::1"), address


def test_the_dockerfile_uses_hive_as_its_entrypoint() -> None:
    assert DOCKERFILE.exists(), "Dockerfile is missing"
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    entrypoints = [line.split(None, 1)[1] for line in lines if line.startswith("ENTRYPOINT")]
    assert entrypoints, "the Dockerfile has no ENTRYPOINT"
    last = entrypoints[-1]
    argv = json.loads(last) if last.startswith("[") else shlex.split(last)
    assert Path(argv[0]).name == "hive", argv


def test_the_dockerfile_copies_only_files_that_exist() -> None:
    text = DOCKERFILE.read_text()
    missing = []
    for match in re.finditer(r"^COPY\s+(?!--from)(.+)$", text, flags=re.MULTILINE):
        *sources, _target = shlex.split(match.group(1))
        missing += [s for s in sources if not s.startswith("--") and not (ROOT / s).exists()]
    assert missing == [], f"COPY of missing files breaks `docker build`: {missing}"


@pytest.mark.parametrize("variable", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(
    variable: str, services: dict[str, Any]
) -> None:
    given = {k: v for k, v in SECRETS.items() if k != variable}

    with pytest.raises(MissingVariable, match=variable):
        _resolved(services, given)
    with pytest.raises(MissingVariable, match=variable):
        _resolved(services, {**given, variable: ""})


def test_no_password_has_a_default() -> None:
    text = COMPOSE.read_text()

    assert not re.findall(r"\$\{\w*(?:PASSWORD|AUTH)\w*:?-", text)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_uses_the_redis_and_postgres_passwords(
    name: str, resolved: dict[str, Any]
) -> None:
    env = _environment(resolved[name])

    assert urlsplit(env["HIVE_BROKER_URL"]).password == SECRETS["REDIS_PASSWORD"]
    assert urlsplit(env["HIVE_DATABASE_URL"]).password == SECRETS["POSTGRES_PASSWORD"]
    postgres = _environment(resolved["postgres"])
    assert postgres["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


@pytest.mark.timeout(60)
def test_the_redis_service_demands_its_password_and_is_healthy_only_with_it(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    """Runs the redis service's own command and health check against a local redis-server,
    on a port of the test's own."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are not installed")
    service = resolved["redis"]
    env = {**os.environ, **_environment(service)}
    argv = _argv(service)
    port = free_port()
    assert argv[:2] == ["sh", "-c"] and "redis-server -" in argv[2], argv
    script = argv[2].replace(
        "redis-server -", f"redis-server - --port {port} --bind 127.0.0.1 --dir {tmp_path}", 1
    )
    health = service["healthcheck"]["test"]
    assert health[0] == "CMD-SHELL", health
    check = health[1].replace("redis-cli", f"redis-cli -p {port}")

    def healthy(auth: str | None) -> bool:
        check_env = {k: v for k, v in env.items() if k != "REDISCLI_AUTH"}
        if auth is not None:
            check_env["REDISCLI_AUTH"] = auth
        done = subprocess.run(["sh", "-c", check], env=check_env, capture_output=True, check=False)
        return done.returncode == 0

    server = subprocess.Popen(
        ["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: healthy(SECRETS["REDIS_PASSWORD"]), 20, "the redis service")

        assert not healthy(None)
        assert not healthy("wrong")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        password = redis.Redis(port=port, password=SECRETS["REDIS_PASSWORD"])
        assert password.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert password.config_get("appendonly") == {"appendonly": "yes"}
        ps = subprocess.run(
            ["ps", "-o", "args=", "-p", str(server.pid)], capture_output=True, text=True
        )
        assert SECRETS["REDIS_PASSWORD"] not in ps.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_flower_service_is_read_only() -> None:
    # hive flower is read-only unless --allow-control is given.
    document = yaml.safe_load(COMPOSE.read_text())
    ctx = _resolve(_argv(document["services"]["flower"]))

    assert not ctx.params.get("allow_control")
