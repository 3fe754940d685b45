"""docker-compose.yml and the Dockerfile fit the `hive` command they run, and the monitoring
they ship (Prometheus, Alertmanager, Grafana) fits the farm.

There is no Docker engine here: the file is parsed and interpolated as compose would, each
`hive` command line goes through the real CLI's parser, mounted files are looked up in the
repository, and what can run without Docker runs for real (the redis service's command and
health check, promtool on the Prometheus config as mounted, the Alertmanager service's
start-up script with a real Alertmanager delivering to a webhook)."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import redis
import yaml

from hive.cli import main
from hive.settings import ApiSettings, MetricsSettings
from tests.support.processes import wait_until
from tests.support.prometheus import binary
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ["migrate", "worker", "beat", "flower", "exporter", "api"]
# The app services that keep running (migrate exits once the schema is in place).
LONG_RUNNING = ["worker", "beat", "flower", "exporter", "api"]
MONITORING = ["prometheus", "alertmanager", "grafana"]
SERVICES = ["redis", "postgres", *APP_SERVICES, *MONITORING]

# What the file runs inside each third-party image, and where each listens: facts about the
# images, which are not pulled here. prom/* images are BusyBox-based (sh, awk, wget);
# grafana's is Alpine's (BusyBox's wget).
IMAGE_TOOLS = {
    "redis": {"sh", "redis-server", "redis-cli"},
    "postgres": {"pg_isready"},
    "prom/prometheus": {"wget"},
    "prom/alertmanager": {"/bin/sh", "awk", "wget", "/bin/alertmanager"},
    "grafana/grafana": {"wget"},
}
IMAGE_PORTS = {
    "redis": 6379,
    "postgres": 5432,
    "prom/prometheus": 9090,
    "prom/alertmanager": 9093,
    "grafana/grafana": 3000,
}


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
    "GRAFANA_ADMIN_PASSWORD": "grafana-pw-789",
    "ALERT_WEBHOOK_URL": "https://hooks.example.com/hive?token=t0k3n&channel=ops",
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
        "exporter": "hive exporter",
        "api": "hive api",
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


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_start_after_the_migration(
    name: str, services: dict[str, Any]
) -> None:
    depends_on = services[name].get("depends_on") or {}
    assert "migrate" in depends_on
    if isinstance(depends_on, dict):
        assert depends_on["migrate"].get("condition") == "service_completed_successfully"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_a_healthy_postgres(name: str, services: dict[str, Any]) -> None:
    depends_on = services[name].get("depends_on")

    assert isinstance(depends_on, dict), "a list form cannot wait for health"
    assert depends_on["postgres"].get("condition") == "service_healthy"
    assert services["postgres"].get("healthcheck", {}).get("test")


@pytest.mark.parametrize("name", LONG_RUNNING)
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


def test_the_api_listens_where_its_published_port_reaches_and_is_checked_by_readiness(
    services: dict[str, Any],
) -> None:
    api = services["api"]
    params = _resolve(_argv(api)).params
    # The container's loopback would be unreachable from its published port.
    assert params["host"] not in (None, "127.0.0.1", "localhost", "::1"), params["host"]
    check = _resolve(api["healthcheck"]["test"][2:])
    assert check.command_path == "hive healthcheck api"  # /readyz (tests/e2e/test_api_metrics)
    # Prometheus waits for it to start, not to be healthy: it must show an API that is not.
    assert services["prometheus"]["depends_on"]["api"]["condition"] == "service_started"


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


def test_no_secret_has_a_default() -> None:
    text = COMPOSE.read_text()
    secret = r"\w*(?:PASSWORD|AUTH|SECRET|TOKEN|KEY|WEBHOOK)\w*"

    assert not re.findall(rf"\$\{{{secret}:?-", text)
    # Every one is required: compose refuses to start without it (the test above).
    for variable in re.findall(rf"\$\{{({secret})", text):
        assert variable in SECRETS, variable
    for value in SECRETS.values():
        assert value not in text


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


# --------------------------------------------------------------------- the whole stack


def _repository(image: str) -> str:
    """``prom/prometheus:v2.53.2`` -> ``prom/prometheus``."""
    return image.rsplit(":", 1)[0]


def _listens_on(name: str, services: dict[str, Any]) -> int | None:
    """The port the service listens on inside its container, from its command line, its
    environment and the defaults of the `hive` command or the image; None if none."""
    service = services[name]
    if "image" in service and "build" not in service:
        return IMAGE_PORTS.get(_repository(service["image"]))
    params = _resolve(_argv(service)).params
    env = _environment(service)
    defaults = MetricsSettings.model_fields
    if name == "worker":
        port = params.get("metrics_port") or env.get("HIVE_METRICS_PORT")
        return int(port or defaults["port"].default)
    if name == "exporter":
        port = params.get("port") or env.get("HIVE_EXPORTER_PORT")
        return int(port or defaults["exporter_port"].default)
    if name == "flower":
        return int(params["port"])
    if name == "api":
        port = params.get("port") or env.get("HIVE_API_PORT")
        return int(port or ApiSettings.model_fields["port"].default)
    return None


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path (or volume name) of each of the service's mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def _mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The repository file a container path of the service is, through its bind mounts."""
    for target, source in sorted(_mounts(service).items(), key=lambda m: -len(m[0])):
        if source.startswith("./") and (
            container_path == target or container_path.startswith(target.rstrip("/") + "/")
        ):
            return ROOT / source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is mounted from nowhere in the repository")


def _option(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def test_every_image_is_pinned_to_a_version(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image, f"{name}: {image} takes whatever 'latest' is today"
        tag = image.rsplit(":", 1)[1]
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: {image} is not a release"


@pytest.mark.parametrize("name", [n for n in SERVICES if n != "migrate"])
def test_every_long_running_service_has_a_health_check(name: str, services: dict[str, Any]) -> None:
    check = services[name].get("healthcheck") or {}

    assert check.get("test"), f"{name} has no health check"
    assert not check.get("disable")
    assert services[name].get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_each_hive_service_runs_the_health_check_of_its_own_process(
    name: str, services: dict[str, Any]
) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "hive"], test
    ctx = _resolve(test[2:])

    assert ctx.command_path == f"hive healthcheck {name}"
    if name in ("flower", "exporter", "api"):
        assert ctx.params["port"] == _listens_on(name, services)
        assert ctx.params["address"] is None  # this container's own loopback
    if name == "worker":
        # The node name the check pings by default is the one the worker takes by default.
        assert ctx.params["node"] is None
        assert "--hostname" not in _argv(services["worker"])
        assert "-n" not in _argv(services["worker"])


@pytest.mark.parametrize("name", ["redis", "postgres", *MONITORING])
def test_each_third_party_service_runs_tools_its_image_ships_against_its_own_port(
    name: str, services: dict[str, Any]
) -> None:
    service = services[name]
    tools = IMAGE_TOOLS[_repository(service["image"])]
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    argv = shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]
    words = set(re.findall(r"[\w./-]+", " ".join(argv)))
    assert words & tools, (test, tools)
    if "entrypoint" in service:
        assert service["entrypoint"][0] in tools
    urls = [urlsplit(w) for w in argv if w.startswith("http://")]
    for url in urls:
        assert url.hostname == "127.0.0.1" and url.port == _listens_on(name, services), test
    if name in MONITORING:
        assert argv[0] == "wget" and len(urls) == 1, test


def test_every_depends_on_condition_can_be_met(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, how in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} waits for {target}, which does not exist"
            condition = how["condition"]
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), (name, target)
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (name, target)
            else:
                assert condition == "service_started", (name, target, condition)


def test_every_mounted_file_is_in_the_repository_and_every_volume_is_declared(
    services: dict[str, Any],
) -> None:
    declared = set(yaml.safe_load(COMPOSE.read_text()).get("volumes") or {})
    for name, service in services.items():
        for target, source in _mounts(service).items():
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
                assert source.startswith("./config/"), f"{name} mounts {source} (config only)"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
            assert target.startswith("/"), (name, target)


def test_published_ports_are_loopback_only_distinct_and_reach_what_listens(
    services: dict[str, Any],
) -> None:
    published = []
    for name, service in services.items():
        for port in service.get("ports", []):
            address, host_port, container_port = str(port).split(":")
            assert address == "127.0.0.1", f"{name} publishes {port} on every interface"
            assert int(container_port) == _listens_on(name, services), (name, port)
            published.append(int(host_port))
    assert len(published) == len(set(published)), published
    assert sorted(n for n, s in services.items() if s.get("ports")) == sorted(
        ["flower", "api", *MONITORING]
    )


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The config Prometheus is started with, found through its mounts."""
    argv = services["prometheus"]["command"]
    path = _mounted_file(services["prometheus"], _option(argv, "--config.file"))
    return yaml.safe_load(path.read_text()), path


def test_prometheus_scrapes_and_alerts_services_on_the_ports_they_listen_on(
    services: dict[str, Any], prometheus_config: tuple[dict[str, Any], Path]
) -> None:
    config, _ = prometheus_config
    targets: list[tuple[str, str, int]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((job["job_name"], host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets += [(job["job_name"], host, int(dns["port"])) for host in dns["names"]]
    for alerting in config["alerting"]["alertmanagers"]:
        for static in alerting["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append(("alerting", host, int(port)))

    for job, host, port in targets:
        assert host in services, f"{job}: {host} is no compose service"
        assert port == _listens_on(host, services), f"{job}: {host} listens elsewhere"
    assert {host for _, host, _ in targets} == {
        "worker", "exporter", "flower", "api", "alertmanager"
    }  # fmt: skip
    assert int(_environment(services["worker"]).get("HIVE_METRICS_PORT", "9808")) != 0


def test_promtool_passes_the_prometheus_config_as_compose_mounts_it(
    services: dict[str, Any], prometheus_config: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """The files laid out at their container paths, the rule file included (it is named
    relative to the config): what Prometheus itself loads in the container."""
    promtool = binary("promtool")
    for target, source in _mounts(services["prometheus"]).items():
        if source.startswith("./"):
            placed = tmp_path / target.lstrip("/")
            placed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, placed)
    config = tmp_path / _option(services["prometheus"]["command"], "--config.file").lstrip("/")

    done = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr
    assert prometheus_config[0]["alerting"]["alertmanagers"]


def test_grafana_provisions_the_mounted_dashboards_and_the_compose_prometheus(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    provisioning = _mounted_file(grafana, "/etc/grafana/provisioning")  # Grafana's default
    providers = yaml.safe_load((provisioning / "dashboards" / "hive.yml").read_text())
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())

    path = providers["providers"][0]["options"]["path"]
    assert path in mounts, f"the dashboards are read from {path}, which nothing mounts"
    dashboards = _mounted_file(grafana, path)
    assert sorted(p.name for p in dashboards.glob("*.json")) == ["hive.json"]
    uid = sources["datasources"][0]["uid"]
    dashboard = json.loads((dashboards / "hive.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}
    url = urlsplit(sources["datasources"][0]["url"])
    assert url.hostname in services
    assert url.port == _listens_on(url.hostname, services)
    assert _environment(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert _environment(grafana)["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[tuple[str, Any]]]]:
    received: list[tuple[str, Any]] = []
    handler = type("Handler", (_Webhook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(120)
def test_the_alertmanager_service_writes_in_its_webhook_url_and_delivers_alerts_to_it(
    resolved: dict[str, Any], webhook: tuple[int, list[tuple[str, Any]]], tmp_path: Path
) -> None:
    """Runs the service's own start-up script, with a local Alertmanager in place of the
    image's and a directory of the test's own in place of its volume."""
    alertmanager, amtool = binary("prometheus-alertmanager"), binary("amtool")
    service = resolved["alertmanager"]
    hook_port, received = webhook
    url = f"http://127.0.0.1:{hook_port}/hive?token=t0k3n&channel=a|b"  # & and | stay as they are
    port = free_port()
    template = _mounted_file(service, "/etc/alertmanager/alertmanager.yml")
    assert "${ALERT_WEBHOOK_URL}" in template.read_text()
    assert "http" not in template.read_text().split("receivers:", 1)[1], "a URL in the repo"
    [script] = service["command"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    # The image's paths, each replaced once (a local path may contain another's text).
    local = {
        "/etc/alertmanager/alertmanager.yml": str(template),
        "exec /bin/alertmanager ": f"exec {alertmanager} ",
        "/alertmanager/alertmanager.yml": str(tmp_path / "alertmanager.yml"),
        "--storage.path=/alertmanager": f"--storage.path={tmp_path}",
    }
    for path in local:
        assert path in script, path
    script = re.sub("|".join(map(re.escape, local)), lambda m: local[m.group(0)], script)
    script = script.rstrip() + f" --web.listen-address=127.0.0.1:{port} --cluster.listen-address="
    env = {**os.environ, "ALERT_WEBHOOK_URL": url}
    server = subprocess.Popen(
        ["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(ready, 30, "alertmanager to start")
        rendered = tmp_path / "alertmanager.yml"
        assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
        assert f'url: "{url}"' in rendered.read_text()
        checked = subprocess.run(
            [amtool, "check-config", str(rendered)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr

        alert = [{"labels": {"alertname": "HiveNoLiveWorker", "severity": "page"}}]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        # Sent once the group has waited its group_wait (30 s).
        wait_until(lambda: bool(received), 60, "the alert to reach the webhook")
        path, body = received[0]
        assert path == "/hive?token=t0k3n&channel=a|b"
        assert [a["labels"]["alertname"] for a in body["alerts"]] == ["HiveNoLiveWorker"]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=15)
