"""The service registry with real processes: a real `hive beat` sends the health sweep and
the cleanup to a real `hive worker`, which probes HTTP servers this test runs on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hive import Client
from hive.errors import (
    InvalidArgument,
    NoPassingInstance,
    PermissionDenied,
    ServiceInstanceNotFound,
)
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.http_stub import HealthStub
from tests.support.processes import HiveProcess, wait_until

# Sweeps every second, probes time out after one, two failures make an instance critical.
FAST_HEALTH = {
    "HIVE_HEALTH_INTERVAL_S": "1",
    "HIVE_CLEANUP_INTERVAL_S": "1",
    "HIVE_HEALTH_TIMEOUT_S": "1",
    "HIVE_HEALTH_FAILURES": "2",
}


@pytest.fixture
def stub() -> Iterator[HealthStub]:
    server = HealthStub({"ok": 200, "busy": 429, "broken": 500, "hang": "hang", "flip": 500})
    yield server
    server.close()


def _status(instance_id: str) -> str | None:
    return db.scalar("SELECT status FROM service_instances WHERE id = :id", id=instance_id)


def _events(kind: str) -> list[dict[str, Any]]:
    rows = db.rows("SELECT detail FROM events WHERE kind = :kind ORDER BY id", kind=kind)
    return [r.detail for r in rows]


@pytest.mark.timeout(120)
def test_beat_probes_health_urls_into_warning_and_critical_and_back_and_cleans_up(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    stub: HealthStub,
    clean_state: None,
) -> None:
    services = Client().services
    for name in ("ok", "busy", "broken", "hang", "flip"):
        services.register(
            "tool-api", "http://127.0.0.1:1/", health_url=stub.url(name), instance_id=name,
            deregister_after_s=2.0 if name == "broken" else None,
        )  # fmt: skip
    services.register("model-server", "http://127.0.0.1:1/", ttl_s=1, instance_id="silent")
    start_worker("--concurrency", "2", extra_env=FAST_HEALTH)
    start_beat(extra_env=FAST_HEALTH)

    wanted = {
        "ok": "passing", "busy": "warning", "hang": "critical", "flip": "critical",
        "silent": "critical",
    }  # fmt: skip
    wait_until(lambda: {name: _status(name) for name in wanted} == wanted, 60, f"statuses {wanted}")
    shown = services.get("hang")
    assert shown.failures >= 2 and shown.last_check_output == "no answer within 1s"
    assert shown.critical_since is not None
    stub.answers["flip"] = 200
    wait_until(lambda: _status("flip") == "passing", 30, "flip passing after one success")
    wait_until(lambda: _status("broken") is None, 30, "broken deregistered by cleanup")
    assert _status("hang") == "critical", "no deregister-after: kept however long critical"

    changes = [(e["instance_id"], e["from"], e["to"]) for e in _events("service_status")]
    assert ("busy", "passing", "warning") in changes
    assert ("hang", "passing", "critical") in changes
    assert changes.count(("flip", "passing", "critical")) == 1
    assert ("flip", "critical", "passing") in changes
    assert ("ok", "passing", "critical") not in changes
    assert ("silent", "passing", "critical") in changes, "its TTL passed without a heartbeat"
    (cleaned,) = _events("service_deregistered")
    assert cleaned["instance_id"] == "broken" and cleaned["status"] == "critical"
    assert "deregister_after_s" in cleaned["reason"]
    tasks = {e["task"] for e in _events("maintenance")}
    assert {"health", "cleanup"} <= tasks
    health_runs = [e for e in _events("maintenance") if e["task"] == "health"]
    assert health_runs[-1]["result"]["services"]["probed"] >= 4


@pytest.mark.timeout(120)
def test_an_instance_that_misses_its_ttl_is_critical_until_its_next_heartbeat(
    env: dict[str, str], clean_state: None
) -> None:
    services = Client().services
    instance = services.register("model-server", "https://models.internal:8443", ttl_s=1)
    assert services.get(instance).status == "passing"
    assert services.heartbeat(instance).status == "passing"
    db.execute(
        "UPDATE service_instances SET last_heartbeat_at = now() - interval '5 seconds'"
        " WHERE id = :id",
        id=instance,
    )

    swept = run_hive("maintenance", "health", env=env)
    assert swept.returncode == 0, describe(swept)
    assert json.loads(swept.stdout)["services"]["ttl_expired"] == 1
    assert services.get(instance).status == "critical"
    again = run_hive("maintenance", "health", env=env)
    assert json.loads(again.stdout)["services"]["ttl_expired"] == 0, "already critical"

    beat = run_hive("services", "heartbeat", instance, env=env)
    assert beat.returncode == 0, describe(beat)
    assert beat.stdout.split() == [instance, "passing"]
    changes = [(e["from"], e["to"], e["reason"]) for e in _events("service_status")]
    assert changes == [("passing", "critical", "ttl"), ("critical", "passing", "heartbeat")]


@pytest.mark.timeout(120)
def test_pick_spreads_over_the_passing_instances_and_names_the_service_when_none_passes(
    hive_env: dict[str, str], clean_state: None
) -> None:
    services = Client().services
    ids = [services.register("search", f"http://10.0.0.{n}:80") for n in (1, 2, 3)]
    picked = [services.pick("search").id for _ in range(60)]
    assert set(picked) == set(ids)

    db.execute("UPDATE service_instances SET status = 'critical' WHERE id = :id", id=ids[0])
    assert ids[0] not in {services.pick("search").id for _ in range(30)}
    assert {v.id for v in services.instances("search", healthy_only=True)} == set(ids[1:])
    assert len(services.instances("search")) == 3

    db.execute("UPDATE service_instances SET status = 'warning' WHERE id <> :id", id=ids[0])
    with pytest.raises(NoPassingInstance) as none:
        services.pick("search")
    assert str(none.value) == "service 'search' has no passing instance (1 critical, 2 warning)"
    with pytest.raises(NoPassingInstance, match="service 'nothing' has no registered instance"):
        services.pick("nothing")


@pytest.mark.timeout(120)
def test_services_commands_register_list_show_heartbeat_and_deregister_with_json(
    env: dict[str, str], clean_state: None
) -> None:
    registered = run_hive(
        "services", "register", "tool-api", "--url", "http://tools.internal:8080",
        "--health-url", "http://tools.internal:8080/health", "--ttl", "30s",
        "--meta", "zone=eu-1", "--meta", "version=2.1", "--deregister-after", "10m",
        env=env,
    )  # fmt: skip
    assert registered.returncode == 0, describe(registered)
    instance = registered.stdout.strip()
    assert instance.startswith("tool-api-")
    chosen = run_hive(
        "services", "register", "tool-api", "--url", "http://tools2:8080", "--id", "tools-2",
        env=env,
    )  # fmt: skip
    assert chosen.stdout.strip() == "tools-2"

    shown = json.loads(run_hive("services", "show", instance, "--json", env=env).stdout)
    assert shown == Client().services.get(instance).to_json()
    assert (shown["ttl_s"], shown["deregister_after_s"]) == (30.0, 600.0)
    assert shown["meta"] == {"zone": "eu-1", "version": "2.1"}
    assert (shown["status"], shown["failures"], shown["tenant"]) == ("passing", 0, None)
    listed = json.loads(run_hive("services", "list", "tool-api", "--json", env=env).stdout)
    assert listed == [v.to_json() for v in Client().services.instances("tool-api")]
    assert [v["id"] for v in listed] == sorted([instance, "tools-2"])
    none = json.loads(
        run_hive("services", "list", "--status", "critical", "--json", env=env).stdout
    )
    assert none == []
    table = run_hive("services", "list", env=env)
    assert instance in table.stdout and "passing" in table.stdout

    again = run_hive(
        "services", "register", "tool-api", "--url", "http://tools3:8080", "--id", "tools-2",
        env=env,
    )  # fmt: skip
    assert again.returncode == 0 and Client().services.get("tools-2").url == "http://tools3:8080"
    gone = run_hive("services", "deregister", "tools-2", env=env)
    assert gone.returncode == 0, describe(gone)
    missing = run_hive("services", "show", "tools-2", env=env)
    assert missing.returncode == 1
    assert missing.stderr == "error: no service instance with id 'tools-2'\n"
    (event,) = _events("service_deregistered")
    assert event["instance_id"] == "tools-2" and event["reason"] == "deregistered by request"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        # Each named by the option typed, not by the client's and the API's field.
        (["--url", "ftp://host/"], 1, "error: --url must be an http:// or https:// URL"),
        (["--url", "http://user:secret@host/"], 1, "error: --url must not carry user:password@"),
        (["--url", "http://h/", "--health-url", "h:80"], 1, "error: --health-url must be"),
        (["--url", "http://h/", "--ttl", "400d"], 2, "'400d' is more than the maximum, 365d"),
        (["--url", "http://h/", "--deregister-after", "400d"], 2, "is more than the maximum, 365d"),
        (["--url", "http://h/", "--ttl", "0s"], 2, "'0s' is no time at all"),
        (["--url", "http://h/", "--ttl", "soon"], 2, "'soon' is not a duration"),
        (["--url", "http://h/", "--meta", "zone"], 2, "'zone' is not KEY=VALUE"),
        (["--url", "http://h/", "--meta", "b@d=1"], 1, "error: --meta key 'b@d' must be"),
        (["--url", "http://h/", "--id", "a b"], 1, "error: --id 'a b' must be"),
    ],
)
@pytest.mark.timeout(120)
def test_services_register_refuses_bad_input_in_one_line_naming_it(
    env: dict[str, str], clean_state: None, args: list[str], code: int, message: str
) -> None:
    result = run_hive("services", "register", "tool-api", *args, env=env)

    assert result.returncode == code, describe(result)
    assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert "secret" not in result.stderr
    assert db.scalar("SELECT count(*) FROM service_instances") == 0


@pytest.mark.timeout(120)
def test_tenants_see_and_manage_their_own_instances_and_roles_are_checked(
    hive_env: dict[str, str], clean_state: None
) -> None:
    acme = Client(tenant="acme", role="admin").services
    globex = Client(tenant="globex", role="admin").services
    mine = acme.register("search", "http://acme-search:80", instance_id="acme-1")
    globex.register("search", "http://globex-search:80", instance_id="globex-1")

    assert [v.id for v in acme.instances("search")] == ["acme-1"]
    assert acme.get(mine).tenant == "acme"
    for call in (globex.get, globex.heartbeat, globex.deregister):
        with pytest.raises(ServiceInstanceNotFound):
            call(mine)
    with pytest.raises(InvalidArgument, match="instance id 'acme-1' is taken"):
        globex.register("search", "http://elsewhere:80", instance_id="acme-1")
    assert acme.pick("search").id == "acme-1"
    assert {v.id for v in Client().services.instances("search")} == {"acme-1", "globex-1"}

    viewer = Client(tenant="acme", role="viewer").services
    assert [v.id for v in viewer.instances("search")] == ["acme-1"]
    for role in ("viewer", "producer"):
        services = Client(tenant="acme", role=role).services
        with pytest.raises(PermissionDenied, match=f"role '{role}' may not manage services"):
            services.register("search", "http://x:80")
        with pytest.raises(PermissionDenied):
            services.heartbeat(mine)
        with pytest.raises(PermissionDenied):
            services.deregister(mine)
    assert Client().services.get(mine).url == "http://acme-search:80", "nothing changed"


@pytest.mark.timeout(120)
def test_a_health_urls_query_never_reaches_the_workers_log(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    clean_state: None,
) -> None:
    # A health URL may carry a token in its query; httpx logs every request's URL at INFO.
    secret = "s3cr3t-health-token"
    path = f"ok?token={secret}"
    stub = HealthStub({path: 200})
    try:
        Client().services.register(
            "tool-api", "http://127.0.0.1:1/", health_url=stub.url(path), instance_id="ok"
        )
        worker = start_worker("--concurrency", "1", extra_env=FAST_HEALTH)
        start_beat(extra_env=FAST_HEALTH)
        wait_until(lambda: stub.hits.get(path, 0) >= 2, 60, "two probes of the instance")
        assert _status("ok") == "passing"
        assert secret not in worker.log()
    finally:
        stub.close()
