"""The Python client over HTTP is the direct client by another constructor: every check here
runs against ``Client(tenant=..., role=...)`` and ``Client(base_url=..., api_key=...)``
alike, with a real `hive api`, real workers, PostgreSQL and Redis. The same calls give the
same views and raise the same errors; a submit whose answer is lost makes one run."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

import hive.client.http
from hive import Client, RunFailed
from hive.errors import (
    ApprovalError,
    ApprovalNotFound,
    InputError,
    InvalidArgument,
    NotAvailableOverHttp,
    PermissionDenied,
    ReplayError,
    RunNotFound,
    ServiceInstanceNotFound,
    ServiceUnavailable,
    TooManyRequests,
    TooManyRunsInFlight,
    UnknownPipeline,
)
from hive.service import ApprovalView, PipelineView, RunView, ServiceInstanceView
from tests.support import db
from tests.support.api import Api, make_key
from tests.support.processes import HiveProcess, wait_until
from tests.support.proxy import DroppingProxy
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(180)

Connect = Callable[..., Client]


@pytest.fixture(scope="module")
def api(hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = Api({**os.environ, **hive_env}, tmp_path_factory.mktemp("api") / "api.log")
    yield server
    server.stop()


@pytest.fixture(params=["direct", "http"])
def connect(request: pytest.FixtureRequest, api: Api, env: dict[str, str]) -> Iterator[Connect]:
    """``connect(tenant, role)``: a client acting for ``tenant`` with ``role``, directly or
    over HTTP with a key made for them (tenant None: the operator)."""
    made: list[Client] = []

    def connect(tenant: str | None, role: str = "producer") -> Client:
        if request.param == "direct":
            client = Client(tenant=tenant, role=role)
        else:
            key, _ = make_key(tenant, role)
            client = Client(base_url=api.base_url, api_key=key)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


def test_a_producer_submits_waits_reads_lists_and_cancels(
    connect: Connect, start_worker: Callable[..., HiveProcess]
) -> None:
    start_worker("--concurrency", "2")
    acme = connect("acme")

    run = acme.submit("echo-one", {"text": "hello"}, idempotency_key="order-1", priority="high")
    assert run.wait(timeout=60) == {"echo": {"text": "hello"}}
    assert run.status() == "succeeded"
    view = run.view()
    assert isinstance(view, RunView) and isinstance(view.created_at, datetime)
    assert (view.id, view.tenant, view.priority) == (str(run.id), "acme", "high")
    assert [(s.step_id, s.status) for s in view.steps or []] == [("echo", "succeeded")]
    assert acme.get(str(run.id)) == view
    assert acme.submit("echo-one", {"text": "hello"}, idempotency_key="order-1").id == run.id

    later = [acme.submit("echo-one", {"text": str(n)}) for n in range(3)]
    newest_first = [str(r.id) for r in reversed(later)] + [str(run.id)]
    assert [r.id for r in acme.list(pipeline="echo-one", limit=10)] == newest_first
    assert all(r.steps is None for r in acme.list())
    first = acme.list_page(limit=3)
    rest = acme.list_page(limit=3, cursor=first.next_cursor)
    assert [r.id for r in first.runs + rest.runs] == newest_first and rest.next_cursor is None
    assert [r.id for r in acme.list(created_before=view.created_at)] == []
    assert str(run.id) in [r.id for r in acme.list(created_after=view.created_at)]
    assert acme.list(pipeline="parallel") == []

    slow = acme.submit("parallel", {"text": "x"})
    assert acme.cancel(slow.id) is True
    with pytest.raises(RunFailed) as stopped:
        slow.wait(timeout=60)
    assert stopped.value.status == "cancelled"
    assert acme.cancel(slow.id) is False
    assert acme.run(slow.id).status() == "cancelled"

    assert isinstance(acme.pipelines()["echo-one"], PipelineView)
    assert acme.pipeline("echo-one").input_schema["required"] == ["text"]


def test_a_run_that_fails_or_outlasts_the_wait_raises_as_a_direct_wait_does(
    connect: Connect, start_worker: Callable[..., HiveProcess]
) -> None:
    acme = connect("acme")
    queued = acme.submit("echo-one", {"text": "nobody runs me yet"})
    with pytest.raises(TimeoutError, match=f"run {queued.id} still queued after 0.3s"):
        queued.wait(timeout=0.3)

    start_worker("--concurrency", "2")
    failing = acme.submit("fails-midway", {"text": "x"})
    with pytest.raises(RunFailed) as failed:
        failing.wait(timeout=60)
    assert (failed.value.run_id, failed.value.status) == (str(failing.id), "failed")
    assert failed.value.step_id == "doomed"
    assert failed.value.error["message"] == "doomed on purpose"
    assert queued.wait(timeout=60) == {"echo": {"text": "nobody runs me yet"}}


def test_the_typed_errors_of_a_producer(connect: Connect) -> None:
    acme, viewer, globex = connect("acme"), connect("acme", "viewer"), connect("globex")
    theirs = globex.submit("echo-one", {"text": "globex's"})

    for call in (acme.get, acme.cancel, acme.run_row):
        with pytest.raises(RunNotFound, match=f"^no run with id {theirs.id}$"):
            call(theirs.id)
    with pytest.raises(RunNotFound):
        acme.run(theirs.id).wait(timeout=5)
    with pytest.raises(RunNotFound):
        acme.get("not-a-run-id")
    with pytest.raises(PermissionDenied) as denied:
        viewer.submit("echo-one", {"text": "x"})
    assert denied.value.role == "viewer"
    with pytest.raises(UnknownPipeline) as unknown:
        acme.submit("no-such-pipeline", {"text": "x"})
    assert unknown.value.name == "no-such-pipeline" and "echo-one" in unknown.value.known
    with pytest.raises(UnknownPipeline):
        acme.pipeline("no-such-pipeline")
    with pytest.raises(InputError) as unfit:
        acme.submit("echo-one", {"text": 5})
    assert unfit.value.pipeline == "echo-one"
    assert [p.split(": ")[0] for p in unfit.value.problems] == ["input.text"]
    with pytest.raises(InvalidArgument):
        acme.submit("echo-one", {"text": "x"}, deadline=-1)
    with pytest.raises(ValueError):
        acme.submit("echo-one", {"text": "x"}, priority="urgent")
    with pytest.raises(InvalidArgument):
        acme.list(limit=0)
    assert acme.list() == []  # none of the refused submits stored a run


def test_a_direct_and_an_http_client_raise_equal_errors(api: Api, env: dict[str, str]) -> None:
    """The same failing calls, side by side: the same class with the same arguments."""
    other = Client(tenant="globex").submit("echo-one", {"text": "x"})
    missing = uuid.uuid4()
    direct = {role: Client(tenant="acme", role=role) for role in ("viewer", "producer", "admin")}
    http = {
        role: Client(base_url=api.base_url, api_key=make_key("acme", role)[0]) for role in direct
    }
    calls: list[Callable[[dict[str, Client]], object]] = [
        lambda c: c["producer"].get(other.id),
        lambda c: c["producer"].get("no-run"),
        lambda c: c["producer"].cancel(missing),
        lambda c: c["viewer"].submit("echo-one", {"text": "x"}),
        lambda c: c["viewer"].cancel(other.id),
        lambda c: c["producer"].submit("nope", {"text": "x"}),
        lambda c: c["producer"].submit("echo-one", {"text": 5, "more": [1]}),
        lambda c: c["producer"].submit("echo-one", ["not", "an", "object"]),
        lambda c: c["producer"].submit("echo-one", {"text": float("nan"), "tags": {1, 2}}),
        lambda c: c["producer"].pipeline("nope"),
        lambda c: c["admin"].approvals.approve(other.id, "send"),
        lambda c: c["producer"].approvals.approve(other.id, "send"),
        lambda c: c["admin"].approvals.reject(other.id, "send", reason="no"),
        lambda c: c["admin"].services.heartbeat("no-such-instance"),
        lambda c: c["admin"].services.deregister("no-such-instance"),
        lambda c: c["producer"].services.register("search", "http://127.0.0.1:9/"),
        lambda c: c["admin"].replay(other.id),
        lambda c: c["producer"].replay(other.id),
        # Names no route's segment held (a "/" the server decodes, dots the URL resolves
        # away, nothing): the API answered a bare 404, 405 or redirect, an ApiError.
        lambda c: c["producer"].pipeline("a/b"),
        lambda c: c["producer"].pipeline(".."),
        lambda c: c["producer"].pipeline(""),
        lambda c: c["admin"].approvals.approve(other.id, "a/b"),
        lambda c: c["admin"].approvals.reject(other.id, "..", reason="no"),
        lambda c: c["admin"].services.heartbeat("a/b"),
        lambda c: c["admin"].services.heartbeat(".."),
        lambda c: c["admin"].services.deregister(""),
        lambda c: c["admin"].services.get("."),
        lambda c: c["viewer"].services.instances("a/b"),
        lambda c: c["viewer"].services.instances(""),
        # The service's own checks: the API names each problem's place, the message stays.
        lambda c: c["producer"].submit("echo-one", {"text": "x"}, idempotency_key="\x00"),
        lambda c: c["producer"].submit("echo-one", {"text": "x"}, deadline=1e12),
        lambda c: c["admin"].services.register("search", "ftp://x", meta={"k": "\x00"}),
        lambda c: c["viewer"].approvals.list(pipeline="\x00"),
        lambda c: c["viewer"].list_page(cursor="not-one"),
    ]
    try:
        for index, call in enumerate(calls):
            raised = []
            for clients in (direct, http):
                with pytest.raises(Exception) as error:
                    call(clients)
                raised.append(error.value)
            one, two = raised
            assert (type(one), one.args, str(one)) == (type(two), two.args, str(two)), index
    finally:
        for client in http.values():
            client.close()


def test_an_admin_approves_and_rejects_held_steps(
    connect: Connect, start_worker: Callable[..., HiveProcess]
) -> None:
    start_worker("--concurrency", "2")
    producer, viewer, admin = connect("acme"), connect("acme", "viewer"), connect("acme", "admin")
    first = producer.submit("approval-echo", {"text": "draft"})
    second = producer.submit("approval-echo", {"text": "risky"})
    wait_until(lambda: len(viewer.approvals.list()) == 2, 60, "both runs to await approval")
    listed = viewer.approvals.list()
    assert all(isinstance(a, ApprovalView) and a.input is None for a in listed)
    assert {(a.run_id, a.step_id, a.status) for a in listed} == {
        (first.id, "send", "pending"),
        (second.id, "send", "pending"),
    }
    assert connect("globex", "admin").approvals.list() == []
    with pytest.raises(PermissionDenied):
        producer.approvals.approve(first.id, "send")
    with pytest.raises(ApprovalNotFound):
        admin.approvals.approve(first.id, "nope")

    approved = admin.approvals.approve(first.id, "send", input={"text": "edited"})
    assert (approved.status, approved.input_edited) == ("approved", True)
    assert approved.decided_by
    assert first.wait(timeout=60) == {"after": {"text": "edited"}}
    rejected = admin.approvals.reject(second.id, "send", reason="too risky")
    assert (rejected.status, rejected.decision_reason) == ("rejected", "too risky")
    with pytest.raises(RunFailed):
        second.wait(timeout=60)
    with pytest.raises(ApprovalError, match="approved"):
        admin.approvals.approve(first.id, "send")
    assert viewer.approvals.list() == []


def test_an_admin_manages_service_instances_and_replays_dead_letters(
    connect: Connect, start_worker: Callable[..., HiveProcess]
) -> None:
    admin, viewer = connect("acme", "admin"), connect("acme", "viewer")
    instance = admin.services.register(
        "search", "http://127.0.0.1:9/", ttl_s=60, meta={"zone": "a"}, instance_id="search-1"
    )
    assert instance == "search-1"
    (listed,) = viewer.services.instances("search")
    assert isinstance(listed, ServiceInstanceView)
    assert (listed.id, listed.url, listed.meta, listed.tenant) == (
        "search-1", "http://127.0.0.1:9/", {"zone": "a"}, "acme",
    )  # fmt: skip
    assert viewer.services.instances("search", healthy_only=True) == [listed]
    assert viewer.services.pick("search").id == "search-1"
    assert admin.services.heartbeat("search-1").last_heartbeat_at >= listed.last_heartbeat_at
    assert viewer.services.get("search-1").service == "search"
    assert connect("globex", "admin").services.instances("search") == []
    with pytest.raises(PermissionDenied):
        viewer.services.register("search", "http://127.0.0.1:9/")
    admin.services.deregister("search-1")
    assert viewer.services.instances("search") == []
    with pytest.raises(ServiceInstanceNotFound):
        admin.services.heartbeat("search-1")

    start_worker("--concurrency", "2")
    failed = connect("acme").submit("fails-midway", {"text": "x"})
    with pytest.raises(RunFailed):
        failed.wait(timeout=60)
    assert [(d.run_id, d.step_id) for d in viewer.dead_letters()] == [(failed.id, "doomed")]
    db.execute("UPDATE runs SET deadline_at = now() - interval '1 second' WHERE id = :id",
               id=str(failed.id))  # fmt: skip
    with pytest.raises(ReplayError, match=r"deadline passed at .*deadline= in the Python client"):
        admin.replay(failed.id, {"times": 0})
    # Over HTTP refused before it is sent (JSON has no NaN), directly by submit's rule.
    with pytest.raises(InvalidArgument, match=r"^deadline(_s)? must be .*not nan$"):
        admin.replay(failed.id, {"times": 0}, deadline=float("nan"))
    with pytest.raises(InvalidArgument, match="deadline must be a positive number of seconds"):
        admin.replay(failed.id, {"times": 0}, deadline=1e12)
    assert admin.replay(failed.id, {"times": 0}, deadline=600)[0] == "doomed"
    assert failed.wait(timeout=60) is not None
    assert viewer.dead_letters() == []


def test_a_submit_whose_answer_is_lost_is_sent_once_more_and_makes_one_run(
    api: Api, env: dict[str, str]
) -> None:
    key, _ = make_key("acme", "producer")
    operator = Client()
    submitted = []
    for given in (None, "order-7"):
        # A proxy that loses the first answer to a submit, after the API stored its run.
        with DroppingProxy(api.port, b"POST /v1/runs") as proxy:
            with Client(base_url=proxy.url, api_key=key) as client:
                text = f"key {given}"
                submitted.append(client.submit("echo-one", {"text": text}, idempotency_key=given))
            assert proxy.dropped == 1
    made_up, given = submitted

    runs = operator.list(pipeline="echo-one")
    assert sorted(r.id for r in runs) == sorted([str(made_up.id), str(given.id)])
    stored = operator.get(given.id)
    assert stored.tenant == "acme" and stored.input == {"text": "key order-7"}


def test_the_api_key_is_in_no_repr_log_or_error(
    api: Api, env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    key, _ = make_key("acme", "viewer")
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with Client(base_url=api.base_url, api_key=key) as client:
        assert key not in repr(client)
        client.list()
        for call in (
            lambda: client.submit("echo-one", {"text": "x"}),
            lambda: client.get(uuid.uuid4()),
            lambda: client.approvals.get(uuid.uuid4(), "send"),
        ):
            with pytest.raises(Exception) as error:
                call()
            errors.append(error.value)
    assert [type(e) for e in errors] == [PermissionDenied, RunNotFound, NotAvailableOverHttp]
    with Client(base_url=f"http://127.0.0.1:{free_port()}", api_key=key) as down:
        with pytest.raises(ServiceUnavailable) as unreachable:
            down.list()
        errors.append(unreachable.value)
    assert "cannot reach the server at http://127.0.0.1:" in str(unreachable.value)
    with pytest.raises(InvalidArgument) as mixed:
        Client(base_url=api.base_url, api_key=key, tenant="acme")
    errors.append(mixed.value)

    for error in errors:
        chain = [error, error.__cause__, error.__context__]
        assert not any(key in f"{e!s} {e!r}" for e in chain if e is not None), error
    assert key not in caplog.text
    assert caplog.records  # httpx's records were captured, and hold no key


def test_a_wait_longer_than_one_long_poll_polls_again(
    api: Api, env: dict[str, str], start_worker: Callable[..., HiveProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The API holds a poll for a minute at most; here a client's polls last 0.2 s, so a
    # run of about 1 s takes several.
    monkeypatch.setattr(hive.client.http, "WAIT_MAX_S", 0.2)
    polls: list[str] = []
    with Client(base_url=api.base_url, api_key=make_key("acme", "producer")[0]) as client:
        original = client._transport._http.request  # type: ignore[attr-defined]

        def counted(method: str, url: str, **kwargs: object) -> object:
            polls.append(url)
            return original(method, url, **kwargs)

        client._transport._http.request = counted  # type: ignore[attr-defined]
        run = client.submit("parallel", {"text": "x"})
        start_worker("--concurrency", "2")
        assert run.wait(timeout=60) is not None
    assert sum(url.endswith("/wait") for url in polls) >= 3


def test_admission_refusals_are_too_many_requests_with_their_figures(
    env: dict[str, str], tmp_path: Path
) -> None:
    # An API of its own: three requests at once, then one per 100 s; one run in flight.
    limits = {
        "HIVE_API_REQUEST_BURST": "3",
        "HIVE_API_REQUESTS_PER_S": "0.01",
        "HIVE_API_MAX_RUNS_IN_FLIGHT": "1",
    }
    server = Api({**env, **limits}, tmp_path / "api.log")
    try:
        with Client(base_url=server.base_url, api_key=make_key("acme", "producer")[0]) as client:
            client.submit("echo-one", {"text": "the one in flight"})  # no worker: stays queued
            with pytest.raises(TooManyRunsInFlight) as capped:
                client.submit("echo-one", {"text": "one too many"})
            assert (capped.value.tenant, capped.value.cap) == ("acme", 1)
            assert len(client.list()) == 1
            with pytest.raises(TooManyRequests) as limited:
                client.list()
    finally:
        server.stop()
    assert type(limited.value) is TooManyRequests
    assert limited.value.retry_after_s >= 1 and limited.value.limit == 3
    assert "too many requests" in str(limited.value)
