"""The ``http`` agent against a real HTTP server on loopback, run in this process: what it
sends, what it returns, how each failure is classed, and what the farm's guard is told.
The same agent in a real worker, through the registry: tests/e2e/test_http_steps.py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from hive.agents.base import AgentContext, CallTicket, Resource
from hive.agents.builtin.http import HttpAgent
from hive.agents.builtin.http_clients import thread_client
from hive.errors import (
    CredentialError,
    NoPassingInstance,
    PermanentError,
    RetryableError,
    TransientError,
)
from hive.settings import get_settings
from tests.support.http_service import HttpService, Reply
from tests.support.redis_server import free_port

TOKEN = "tok-3f9a1c77e2b84d0e"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def service() -> Iterator[HttpService]:
    server = HttpService()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Each test's own HIVE_* variables, read afresh."""
    monkeypatch.setenv("PARTNER_TOKEN", TOKEN)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@dataclass
class Ticket:
    resource: Resource
    failed_calls: int = 0
    raised: BaseException | None = None

    def used_tokens(self, tokens: int) -> None:
        pass

    def failed(self) -> None:
        self.failed_calls += 1


@dataclass
class RecordingGuard:
    """A CallGuard that admits every call and keeps what each told it."""

    tickets: list[Ticket] = field(default_factory=list)

    @contextlib.contextmanager
    def __call__(self, resource: Resource) -> Iterator[CallTicket]:
        ticket = Ticket(resource)
        self.tickets.append(ticket)
        try:
            yield ticket
        except BaseException as exc:
            ticket.raised = exc
            raise

    def failures(self) -> list[bool]:
        return [t.failed_calls > 0 or t.raised is not None for t in self.tickets]


@dataclass
class InOrder:
    """A ServiceLookup over a fixed list of addresses, picked in order (the registry picks
    at random: order makes each test's path through the instances certain)."""

    addresses: list[str]
    picks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def pick(self, service: str, exclude: Sequence[str] = (), *, shared_only: bool = False) -> str:
        self.picks.append((service, tuple(exclude)))
        for address in self.addresses:
            if address not in exclude:
                return address
        raise NoPassingInstance(service, {"passing": len(self.addresses)} if exclude else {})


def call(step_input: dict[str, Any], **context: Any) -> dict[str, Any]:
    ctx = AgentContext(run_id="run-1", step_id="lookup", attempt=2, trace_id=TRACE_ID, **context)
    return HttpAgent().execute(step_input, ctx)


def test_a_json_answer_is_the_output_and_the_request_carries_the_ids_and_the_query(
    service: HttpService,
) -> None:
    service.route(
        "/customers/42",
        Reply(json={"name": "Ada"}, headers={"Set-Cookie": "sid=1", "X-Rate": "9"}),
    )

    output = call({
        "url": service.url("/customers/42?fields=name"), "query": {"lang": "en", "n": [1, 2]},
        "headers": {"X-Tenant": "acme", "X-Request-ID": "mine"},
    })  # fmt: skip

    assert output["status"] == 200 and output["body"] == {"name": "Ada"}
    assert output["text"] is None
    assert output["url"] == service.url("/customers/42"), "no query in the address shown"
    assert output["headers"]["x-rate"] == "9" and "set-cookie" not in output["headers"]
    assert output["elapsed_s"] > 0
    (seen,) = service.requests
    assert seen.method == "GET" and seen.query == {"fields": "name", "lang": "en", "n": "2"}
    assert seen.headers["x-tenant"] == "acme"
    assert seen.headers["x-request-id"] == "run-1:lookup:2", "the farm's id wins"
    version, trace, span, flags = seen.headers["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE_ID, "01")
    assert len(span) == 16 and int(span, 16) != 0
    assert "authorization" not in seen.headers


def test_each_call_has_a_span_of_its_own_and_no_traceparent_without_a_trace_id(
    service: HttpService,
) -> None:
    service.route("/x", Reply(json={}))
    call({"url": service.url("/x")})
    call({"url": service.url("/x")})
    HttpAgent().execute({"url": service.url("/x")}, AgentContext("run-2", "s", 1))

    first, second, third = service.requests
    assert first.headers["traceparent"] != second.headers["traceparent"]
    assert "traceparent" not in third.headers
    assert third.headers["x-request-id"] == "run-2:s:1"


def test_a_post_sends_json_or_text_and_a_text_answer_is_text(service: HttpService) -> None:
    service.route("/notes", Reply(201, text="stored"))

    sent_json = call({"method": "post", "url": service.url("/notes"), "json": {"a": [1]}})
    sent_text = call({"method": "PUT", "url": service.url("/notes"), "text": "hello"})

    assert sent_json["status"] == 201 and sent_json["text"] == "stored"
    assert sent_json["body"] is None
    as_json, as_text = service.requests
    assert as_json.method == "POST" and as_json.json() == {"a": [1]}
    assert as_json.headers["content-type"] == "application/json"
    assert as_text.body == b"hello" and as_text.headers["content-type"].startswith("text/plain")
    assert sent_text["status"] == 201


def test_a_json_answer_nested_past_reading_is_its_text(service: HttpService) -> None:
    # json.loads raised RecursionError out of the agent: the step failed with a library's
    # error (and was retried) where a body served as JSON that is not is the text.
    deep = "[" * 100_000 + "]" * 100_000
    service.route("/deep", Reply(text=deep, headers={"Content-Type": "application/json"}))

    answer = call({"url": service.url("/deep")})

    assert (answer["body"], answer["text"]) == (None, deep)


@pytest.mark.parametrize(
    ("auth", "header", "sent"),
    [
        ({"type": "bearer", "env": "PARTNER_TOKEN"}, "authorization", f"Bearer {TOKEN}"),
        ({"type": "header", "header": "X-Api-Key", "env": "PARTNER_TOKEN"}, "x-api-key", TOKEN),
        (
            {"type": "basic", "username": "svc", "env": "PARTNER_TOKEN"},
            "authorization",
            "Basic c3ZjOnRvay0zZjlhMWM3N2UyYjg0ZDBl",
        ),
    ],
)
def test_the_credential_is_read_from_the_named_variable_and_scrubbed_from_the_answer(
    service: HttpService, auth: dict[str, str], header: str, sent: str
) -> None:
    service.route("/echo", Reply(echo=True, headers={"X-Echo": sent}))

    output = call({"url": service.url("/echo"), "auth": auth})

    (seen,) = service.requests
    assert seen.headers[header] == sent
    assert output["body"]["headers"][header] == "***"
    assert output["headers"]["x-echo"] == "***"
    assert TOKEN not in repr(output) and sent not in repr(output)


def test_a_credential_variable_that_is_not_set_is_named_without_a_value(
    service: HttpService, settings: pytest.MonkeyPatch
) -> None:
    settings.delenv("PARTNER_TOKEN")
    service.route("/x", Reply(json={}))

    with pytest.raises(CredentialError) as raised:
        call({"url": service.url("/x"), "auth": {"type": "bearer", "env": "PARTNER_TOKEN"}})

    assert str(raised.value) == "the environment variable PARTNER_TOKEN is not set on this worker"
    assert isinstance(raised.value, PermanentError)
    assert service.requests == [], "nothing is sent without its credential"


def test_credential_prefixes_limit_the_variables_a_step_may_name(
    service: HttpService, settings: pytest.MonkeyPatch
) -> None:
    settings.setenv("HIVE_CREDENTIAL_ENV_PREFIXES", "LLM_, VENDOR_")
    get_settings.cache_clear()
    service.route("/x", Reply(json={}))

    with pytest.raises(CredentialError, match=r"outside .*_PREFIXES \(LLM_, VENDOR_\)") as raised:
        call({"url": service.url("/x"), "auth": {"type": "bearer", "env": "PARTNER_TOKEN"}})

    assert TOKEN not in str(raised.value)
    settings.setenv("VENDOR_KEY", "vendor-secret")
    call({"url": service.url("/x"), "auth": {"type": "bearer", "env": "VENDOR_KEY"}})
    assert service.requests[-1].headers["authorization"] == "Bearer vendor-secret"


def test_a_404_is_permanent_naming_method_address_and_status_with_a_scrubbed_excerpt(
    service: HttpService,
) -> None:
    service.route("/customers/7", Reply(404, text=f"no customer 7 for\n token {TOKEN}"))
    guard = RecordingGuard()

    with pytest.raises(PermanentError) as raised:
        call(
            {"method": "DELETE", "url": service.url("/customers/7?why=1"),
             "auth": {"type": "bearer", "env": "PARTNER_TOKEN"}},
            call=guard,
        )  # fmt: skip

    assert str(raised.value) == (
        f"DELETE {service.url('/customers/7')} answered 404 Not Found, expected 2xx: "
        "no customer 7 for token ***"
    )
    assert guard.failures() == [False], "a refused request is no failure of the service"


def test_an_expected_status_is_an_answer_and_a_redirect_is_not_followed(
    service: HttpService,
) -> None:
    service.route("/gone", Reply(404, json={"gone": True}))
    service.route("/moved", Reply(302, headers={"Location": "http://example.invalid/"}))

    output = call({"url": service.url("/gone"), "expect": [200, 404]})
    with pytest.raises(PermanentError, match="answered 302 Found, expected 2xx "):
        call({"url": service.url("/moved")})

    assert output["status"] == 404 and output["body"] == {"gone": True}
    assert [r.path for r in service.requests] == ["/gone", "/moved"]


@pytest.mark.parametrize(
    ("reply", "wait_s"),
    [
        (Reply(503, retry_after="7"), 7.0),
        (Reply(429, retry_after="2.5"), 2.5),
        (Reply(503, retry_after="100000"), 100000.0),  # the farm caps it, not the agent
        (Reply(502), None),
        (Reply(429, retry_after="soon"), None),
    ],
)
def test_5xx_and_429_are_transient_with_the_retry_after_they_give(
    service: HttpService, reply: Reply, wait_s: float | None
) -> None:
    service.route("/busy", reply)
    guard = RecordingGuard()

    with pytest.raises(TransientError) as raised:
        call({"url": service.url("/busy")}, call=guard)

    assert raised.value.retry_after_s == wait_s
    assert f"answered {reply.status} " in str(raised.value)
    assert guard.failures() == [True], "the service's failure counts against its breaker"


def test_a_retry_after_date_is_seconds_from_now(service: HttpService) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    service.route("/busy", Reply(503, retry_after=later))

    with pytest.raises(TransientError) as raised:
        call({"url": service.url("/busy")})

    assert raised.value.retry_after_s is not None and 30 < raised.value.retry_after_s <= 40


def test_no_answer_in_time_and_no_connection_are_transient(service: HttpService) -> None:
    service.route("/slow", Reply(json={}, delay_s=2))

    with pytest.raises(TransientError, match=r"no answer within the read timeout of 0\.2s"):
        call({"url": service.url("/slow"), "timeout": {"read": 0.2}})
    with pytest.raises(TransientError, match=r"no answer \(ConnectError: .*refused"):
        call({"url": f"http://127.0.0.1:{free_port()}/x"})


@pytest.mark.parametrize("declared", [False, True])
def test_an_answer_over_the_size_cap_is_refused_for_good(
    service: HttpService, settings: pytest.MonkeyPatch, declared: bool
) -> None:
    settings.setenv("HIVE_HTTP_MAX_RESPONSE_BYTES", "100000")
    get_settings.cache_clear()
    service.route("/big", Reply(size=3_000_000, declare_size=declared))
    service.route("/fits", Reply(size=100_000, declare_size=declared))

    with pytest.raises(PermanentError) as raised:
        call({"url": service.url("/big")})
    fits = call({"url": service.url("/fits")})

    assert str(raised.value) == (
        f"GET {service.url('/big')}: the answer is larger than 100000 bytes "
        "(HIVE_HTTP_MAX_RESPONSE_BYTES); refused"
    )
    assert fits["text"] == "x" * 100_000


def test_a_service_fails_over_from_a_refused_connection_and_a_5xx_to_a_passing_instance(
    service: HttpService,
) -> None:
    broken = HttpService()
    broken.route("/api/v1/orders", Reply(500, text="boom"))
    down = f"http://127.0.0.1:{free_port()}"
    service.route("/api/v1/orders", Reply(json={"orders": []}))
    lookup = InOrder([down, broken.url("/api"), service.url("/api/")])
    guard = RecordingGuard()
    try:
        output = call({"service": "orders", "path": "/v1/orders"}, services=lookup, call=guard)
    finally:
        broken.close()

    assert output["body"] == {"orders": []}
    assert output["url"] == service.url("/api/v1/orders"), "under the instance's base path"
    assert [p[1] for p in lookup.picks] == [(), (down,), (down, broken.url("/api"))]
    assert [t.resource for t in guard.tickets] == [Resource("service", "orders")] * 3
    assert guard.failures() == [True, True, False]
    assert len(broken.requests) == 1 and len(service.requests) == 1


def test_a_service_whose_instances_all_fail_fails_the_attempt_naming_the_last_error(
    service: HttpService,
) -> None:
    service.route("/q", Reply(503, retry_after="3"))
    lookup = InOrder([f"http://127.0.0.1:{free_port()}", service.address])

    with pytest.raises(TransientError) as raised:
        call({"service": "search", "path": "/q"}, services=lookup)

    assert str(raised.value).startswith(
        f"service 'search': 2 instances failed; the last: GET {service.url('/q')} answered 503"
    )
    assert raised.value.retry_after_s == 3.0


def test_a_read_timeout_or_a_4xx_of_a_service_does_not_try_another_instance(
    service: HttpService,
) -> None:
    other = HttpService()
    other.route("/slow", Reply(json={}))
    service.route("/slow", Reply(json={}, delay_s=2))
    service.route("/nope", Reply(400, json={"error": "bad"}))
    lookup = InOrder([service.address, other.address])
    try:
        with pytest.raises(TransientError, match="read timeout"):
            call({"service": "s", "path": "/slow", "timeout": {"read": 0.2}}, services=lookup)
        with pytest.raises(PermanentError, match="answered 400 Bad Request"):
            call({"service": "s", "path": "/nope"}, services=lookup)
    finally:
        other.close()

    assert other.requests == [], "the request may have been served: not sent twice"


def test_a_service_without_a_passing_instance_is_transient_and_names_it() -> None:
    with pytest.raises(RetryableError, match="service 'ghost' has no registered instance"):
        call({"service": "ghost", "path": "/"}, services=InOrder([]))
    with pytest.raises(PermanentError, match="no service registry outside the farm"):
        call({"service": "ghost", "path": "/"})


def test_an_answer_is_read_in_the_charset_it_names_else_as_utf_8(service: HttpService) -> None:
    # The body is "café" in UTF-8 both times; the first answer says it is Latin-1.
    latin = {"Content-Type": "text/plain; Charset=ISO-8859-1"}
    service.route("/latin", Reply(text="café", headers=latin))
    service.route("/plain", Reply(text="café", headers={"Content-Type": "text/plain"}))

    assert call({"url": service.url("/latin")})["text"] == "cafÃ©"
    assert call({"url": service.url("/plain")})["text"] == "café"


def test_calls_of_a_thread_reuse_its_connection_and_keep_no_cookies(
    service: HttpService,
) -> None:
    service.route("/login", Reply(json={}, headers={"Set-Cookie": "session=abc; Path=/"}))
    service.route("/next", Reply(json={}))

    call({"url": service.url("/login")})
    call({"url": service.url("/next")})
    clients: list[Any] = []
    worker = threading.Thread(target=lambda: clients.append(thread_client()))
    worker.start()
    worker.join()

    first, second = service.requests
    assert first.client_port == second.client_port, "one kept-alive connection"
    assert "cookie" not in second.headers
    assert clients[0] is not thread_client(), "each thread has its own client"


def test_an_instance_address_no_request_can_go_to_fails_for_good_without_a_breaker_failure() -> (
    None
):
    # Registered before the registry refused such addresses: httpx.InvalidURL escaped the
    # agent, a failure retried and counted against the service's breaker.
    guard = RecordingGuard()
    with pytest.raises(PermanentError, match=r"cannot send \(Invalid IPv4 address"):
        call(
            {"service": "partner", "path": "/x"},
            services=InOrder(["http://999.1.1.1"]),
            call=guard,
        )
    assert guard.failures() == [False]


@pytest.mark.timeout(60)
def test_a_server_trickling_its_answer_is_read_no_longer_than_the_step_lasts(
    service: HttpService,
) -> None:
    # A byte every 0.05 s never trips a read timeout: the agent read on for as long as the
    # server sent (here 10 minutes), past its step's deadline (abandoned under --pool
    # threads, its slots held meanwhile) and its run's end.
    service.route("/slow", Reply(size=12_000, trickle_s=0.05))
    step_over = threading.Event()
    threading.Timer(1.5, step_over.set).start()

    with pytest.raises(PermanentError, match="stopped reading the answer: the step ran past"):
        call({"url": service.url("/slow"), "timeout": {"read": 5}}, is_cancelled=step_over.is_set)
