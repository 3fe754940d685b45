"""``http`` steps in a real worker, against a real HTTP server on loopback: by URL, and by
service name through the registry in PostgreSQL (the shipped ``partner-lookup`` pipeline),
with retries, permanent failures, failover and the size cap."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from hive import Client
from hive.errors import RunFailed
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.http_service import HttpService, Reply
from tests.support.processes import HiveProcess
from tests.support.redis_server import free_port

SECRETS = {"PARTNER_TOKEN": "bearer-7d1e0c5a9f", "PARTNER_API_KEY": "key-b6a2e94c31"}


@pytest.fixture
def service() -> Iterator[HttpService]:
    server = HttpService()
    yield server
    server.close()


@pytest.fixture
def worker(start_worker: Callable[..., HiveProcess]) -> HiveProcess:
    return start_worker("--concurrency", "1", extra_env=SECRETS)


def _trace_id(run_id: object) -> str:
    return str(db.scalar("SELECT trace_id FROM runs WHERE id = :id", id=str(run_id)))


@pytest.mark.timeout(120)
def test_a_step_calls_the_url_its_run_gives_with_its_trace_id_and_request_id(
    worker: HiveProcess, service: HttpService
) -> None:
    service.route("/customers/42", Reply(json={"name": "Ada"}))

    run = Client().submit("http-url", {"url": service.url("/customers/42?v=2")})
    output = run.wait(timeout=60)

    assert output["status"] == 200 and output["body"] == {"name": "Ada"}
    assert output["url"] == service.url("/customers/42")
    (seen,) = service.requests
    assert seen.query == {"v": "2"}
    assert "authorization" not in seen.headers, "a URL from the run gets no credential"
    assert seen.headers["x-request-id"] == f"{run.id}:call:1"
    assert re.fullmatch(rf"00-{_trace_id(run.id)}-[0-9a-f]{{16}}-01", seen.headers["traceparent"])


@pytest.mark.timeout(120)
def test_a_step_with_a_token_calls_the_service_its_pipeline_names_at_the_path_its_run_gives(
    worker: HiveProcess, service: HttpService, env: dict[str, str], clean_state: None
) -> None:
    service.route("/api/customers/42", Reply(json={"name": "Ada"}))
    _register(env, service.url("/api"))

    run = Client().submit("http-bearer", {"path": "/customers/42"})
    output = run.wait(timeout=60)

    assert output["body"] == {"name": "Ada"}
    assert output["url"] == service.url("/api/customers/42")
    (seen,) = service.requests
    assert seen.headers["authorization"] == f"Bearer {SECRETS['PARTNER_TOKEN']}"
    assert seen.headers["x-request-id"] == f"{run.id}:call:1"


@pytest.mark.timeout(120)
def test_a_503_is_retried_as_a_new_attempt_and_then_succeeds(
    worker: HiveProcess, service: HttpService
) -> None:
    service.route("/flaky", Reply(503, retry_after="1"), Reply(json={"ok": True}))

    run = Client().submit("http-url", {"url": service.url("/flaky")})

    assert run.wait(timeout=60)["body"] == {"ok": True}
    (failed,) = db.attempts_of(run.id, "call")
    assert failed.outcome == "retried"
    assert failed.error["type"] == "TransientError"
    assert failed.error["message"] == (
        f"GET {service.url('/flaky')} answered 503 Service Unavailable; retry after 1s"
    )
    first, second = service.requests
    assert first.headers["x-request-id"] == f"{run.id}:call:1"
    assert second.headers["x-request-id"] == f"{run.id}:call:2"
    assert first.client_port == second.client_port, "the pool process kept its connection"


@pytest.mark.timeout(120)
def test_the_retry_waits_for_the_answer_s_retry_after_not_the_step_s_backoff(
    worker: HiveProcess, service: HttpService
) -> None:
    service.route("/busy", Reply(429, retry_after="3"), Reply(json={"ok": True}))

    Client().submit("http-url", {"url": service.url("/busy")}).wait(timeout=60)

    first, second = service.requests
    # The pipeline's backoff is 0.2s: only the Retry-After explains a wait of 3s.
    assert second.at - first.at >= 2.9


@pytest.mark.timeout(120)
def test_a_404_fails_the_run_for_good_naming_method_address_and_status(
    worker: HiveProcess, service: HttpService
) -> None:
    service.route("/customers/missing", Reply(404, json={"error": "no such customer"}))

    run = Client().submit("http-url", {"url": service.url("/customers/missing")})
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)

    assert failed.value.step_id == "call"
    assert failed.value.error["message"] == (
        f"GET {service.url('/customers/missing')} answered 404 Not Found, expected 2xx: "
        '{"error": "no such customer"}'
    )
    assert len(service.requests) == 1, "a permanent failure is not retried"
    (attempt,) = db.attempts_of(run.id, "call")
    assert attempt.outcome == "failed"


@pytest.mark.timeout(120)
def test_an_answer_over_the_size_cap_fails_the_step_without_being_stored(
    start_worker: Callable[..., HiveProcess], service: HttpService
) -> None:
    start_worker(
        "--concurrency", "1", extra_env={**SECRETS, "HIVE_HTTP_MAX_RESPONSE_BYTES": "50000"}
    )
    service.route("/export", Reply(size=5_000_000))

    run = Client().submit("http-url", {"url": service.url("/export")})
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)

    assert failed.value.error["message"] == (
        f"GET {service.url('/export')}: the answer is larger than 50000 bytes "
        "(HIVE_HTTP_MAX_RESPONSE_BYTES); refused"
    )
    assert db.steps_of(run.id)["call"].output is None


def _register(env: dict[str, str], url: str) -> str:
    done = run_hive("services", "register", "partner", "--url", url, env=env)
    assert done.returncode == 0, describe(done)
    return done.stdout.strip()


@pytest.mark.timeout(180)
def test_partner_lookup_calls_the_service_by_name_and_fails_over_past_broken_instances(
    start_worker: Callable[..., HiveProcess],
    service: HttpService,
    env: dict[str, str],
    clean_state: None,
) -> None:
    broken = HttpService()
    broken.route("/v1/customers", Reply(502, text="bad gateway"))
    down = f"http://127.0.0.1:{free_port()}"
    service.route(
        "/api/v1/customers",
        lambda request: Reply(json={"id": request.query["id"], "notes": "mail ada@example.com"}),
    )
    for address in (service.url("/api"), broken.address, down):
        _register(env, address)
    # Threads: each thread of the pool keeps a client of its own.
    worker = start_worker("--pool", "threads", "--concurrency", "4", extra_env=SECRETS)
    client = Client()

    def failed_over_from(address: str) -> bool:
        return f"service 'partner': instance {address} failed; trying another" in worker.log()

    try:
        # The registry picks at random: run until each broken instance was picked before
        # the passing one at least once (each run does so with a chance of 1 in 3 or more).
        for n in range(60):
            run = client.submit("partner-lookup", {"customer_id": f"c{n}"})
            assert run.wait(timeout=60) == {
                "customer": {"id": f"c{n}", "notes": "mail ada@example.com"},
                "notes": "mail [EMAIL]",
            }
            assert db.attempts_of(run.id, "lookup") == [], "failover is within the attempt"
            if failed_over_from(down) and failed_over_from(broken.address):
                break
    finally:
        broken.close()

    assert failed_over_from(down), "the instance that refuses connections was never tried"
    assert failed_over_from(broken.address) and broken.requests
    assert len(service.requests) == n + 1, "one answer per run, from the passing instance"
    assert {r.headers["x-api-key"] for r in service.requests} == {SECRETS["PARTNER_API_KEY"]}


@pytest.mark.timeout(120)
def test_a_service_with_no_passing_instance_is_retried_then_fails_naming_it(
    worker: HiveProcess, env: dict[str, str], clean_state: None
) -> None:
    instance = _register(env, "http://127.0.0.1:9/")
    db.execute("UPDATE service_instances SET status = 'critical' WHERE id = :id", id=instance)

    run = Client().submit("http-service", {"path": "/anything"})
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)

    assert failed.value.error["message"] == "service 'partner' has no passing instance (1 critical)"
    assert failed.value.error["type"] == "TransientError"
    attempts = db.attempts_of(run.id, "call")
    assert [a.outcome for a in attempts] == ["retried", "failed"], "the instance may come back"


@pytest.mark.timeout(120)
def test_a_tenant_s_step_uses_its_own_and_shared_instances_never_another_tenant_s(
    worker: HiveProcess, service: HttpService, clean_state: None
) -> None:
    other = HttpService()
    service.route("/who", Reply(json={"instance": "ours"}))
    other.route("/who", Reply(json={"instance": "theirs"}))
    Client(tenant="globex", role="admin").services.register("partner", other.address)
    try:
        with pytest.raises(RunFailed, match="service 'partner' has no registered instance"):
            Client(tenant="acme").submit("http-service-open", {"path": "/who"}).wait(timeout=60)
        Client().services.register("partner", service.address)  # shared: of no tenant
        for tenant in ("acme", None):
            run = Client(tenant=tenant).submit("http-service-open", {"path": "/who"})
            assert run.wait(timeout=60)["body"] == {"instance": "ours"}
    finally:
        other.close()

    assert other.requests == []


@pytest.mark.timeout(180)
def test_a_step_with_credentials_calls_only_shared_instances_never_the_tenant_s_own(
    worker: HiveProcess, service: HttpService, clean_state: None
) -> None:
    """A tenant's admin may register an instance of any service name: a step that sends the
    worker's credential never picks it (else the tenant would be sent the operator's
    secret); a step without one may."""
    own = HttpService()
    service.route("/who", Reply(json={"instance": "shared"}))
    own.route("/who", Reply(json={"instance": "acme's"}))
    acme = Client(tenant="acme")
    Client(tenant="acme", role="admin").services.register("partner", own.address)
    try:
        with pytest.raises(RunFailed) as failed:
            acme.submit("http-service", {"path": "/who"}).wait(timeout=60)
        assert failed.value.error["message"] == (
            "service 'partner' has no registered shared instance; a step with credentials "
            "calls only shared ones"
        )
        shared = Client().services.register("partner", service.address)
        for _ in range(6):  # picked at random: acme's would have taken some
            run = acme.submit("http-service", {"path": "/who"})
            assert run.wait(timeout=60)["body"] == {"instance": "shared"}
        assert own.requests == []

        # No credential: acme's own instance serves acme's runs as before.
        db.execute("UPDATE service_instances SET status = 'critical' WHERE id = :id", id=shared)
        run = acme.submit("http-service-open", {"path": "/who"})
        assert run.wait(timeout=60)["body"] == {"instance": "acme's"}
        (reached,) = own.requests
        assert "x-api-key" not in reached.headers and "authorization" not in reached.headers
    finally:
        own.close()
    assert {r.headers["x-api-key"] for r in service.requests} == {SECRETS["PARTNER_API_KEY"]}
