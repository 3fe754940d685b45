"""Dead letters, approvals and the service registry over HTTP, as a producer app in another
language would use them: viewers read, admins change, another tenant's things are 404, and
every change is in the audit trail. A real `hive api`, real workers, PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import db
from tests.support.api import Api, make_key
from tests.support.commands import run_hive
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def api(hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = Api({**os.environ, **hive_env}, tmp_path_factory.mktemp("api") / "api.log")
    yield server
    server.stop()


def _submit(api: Api, key: str, pipeline: str, text: str) -> str:
    answer = api.call(
        "POST", "/v1/runs", key=key, json={"pipeline": pipeline, "input": {"text": text}}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _wait(api: Api, key: str, run_id: str) -> Any:
    answer = api.call("GET", f"/v1/runs/{run_id}/wait", key=key, params={"timeout_s": 60})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _audit(env: dict[str, str], tenant: str, action_prefix: str) -> list[tuple[str, str, str]]:
    listed = run_hive("audit", "list", "--tenant", tenant, "--json", env=env)
    return [
        (r["action"], r["target"], r["outcome"])
        for r in reversed(json.loads(listed.stdout))
        if r["action"].startswith(action_prefix)
    ]


def test_an_admin_replays_a_dead_letter_over_http_with_an_edited_input(
    api: Api, env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    start_worker("--concurrency", "2")
    producer, _ = make_key("acme", "producer")
    viewer, _ = make_key("acme", "viewer")
    admin, _ = make_key("acme", "admin")
    stranger, _ = make_key("globex", "admin")
    run_id = _submit(api, producer, "fails-midway", "x")
    failed = _wait(api, producer, run_id)
    assert failed["status"] == "failed"
    # The worker's traceback (its file paths and source lines) stays in the farm: the
    # step's error is its type and message, wherever the API shows it.
    errors = [s["error"] for s in failed["steps"] if s["error"] is not None]
    shown = api.call("GET", f"/v1/runs/{run_id}", key=viewer).json()
    errors += [s["error"] for s in shown["steps"] if s["error"] is not None]
    assert errors == [{"type": "PermanentError", "message": "doomed on purpose"}] * 2

    letters = api.call("GET", "/v1/dead-letters", key=viewer)
    assert letters.status_code == 200, letters.text
    assert [(d["run_id"], d["step_id"]) for d in letters.json()] == [(run_id, "doomed")]
    assert letters.json()[0]["error"] == {"type": "PermanentError", "message": "doomed on purpose"}
    assert "Traceback" not in letters.text + json.dumps(failed) + json.dumps(shown)
    # Nor the name of the worker that ran each step (one of the farm's hosts).
    assert {s["worker"] for s in failed["steps"] + shown["steps"]} == {None}
    assert db.scalar("SELECT count(worker) FROM step_runs WHERE run_id = :id", id=run_id) >= 2
    assert api.call("GET", "/v1/dead-letters", key=stranger).json() == []
    filtered = api.call("GET", "/v1/dead-letters", key=viewer, params={"pipeline": "echo-one"})
    assert filtered.json() == []

    replay = f"/v1/dead-letters/{run_id}/replay"
    assert api.call("POST", replay, key=producer).status_code == 403
    assert api.call("POST", replay, key=stranger).status_code == 404
    missing = api.call("POST", "/v1/dead-letters/not-a-run/replay", key=admin)
    assert missing.status_code == 404

    replayed = api.call("POST", replay, key=admin, json={"input": {"times": 0}})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["id"] == run_id and replayed.json()["sent"][0] == "doomed"
    done = _wait(api, producer, run_id)
    assert done["status"] == "succeeded"
    assert {s["step_id"]: s["status"] for s in done["steps"]}["doomed"] == "succeeded"

    again = api.call("POST", replay, key=admin)
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "conflict"
    assert api.call("GET", "/v1/dead-letters", key=viewer).json() == []
    assert _audit(env, "acme", "run.replay") == [
        ("run.replay", f"run:{run_id}", "denied"),
        ("run.replay", "run:not-a-run", "not_found"),
        ("run.replay", f"run:{run_id}", "ok"),
        ("run.replay", f"run:{run_id}", "failed"),
    ]
    assert _audit(env, "globex", "run.replay") == [("run.replay", f"run:{run_id}", "not_found")]


def test_an_admin_replays_a_run_past_its_deadline_over_http_only_with_a_new_deadline_s(
    api: Api, env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    start_worker("--concurrency", "2")
    producer, _ = make_key("acme", "producer")
    admin, _ = make_key("acme", "admin")
    answer = api.call("POST", "/v1/runs", key=producer, json={
        "pipeline": "fails-midway", "input": {"text": "x"}, "deadline_s": 300,
    })  # fmt: skip
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]
    assert _wait(api, producer, run_id)["status"] == "failed"
    db.execute("UPDATE runs SET deadline_at = now() - interval '1 second' WHERE id = :id",
               id=run_id)  # fmt: skip
    replay = f"/v1/dead-letters/{run_id}/replay"

    refused = api.call("POST", replay, key=admin)
    assert refused.status_code == 409, refused.text
    assert "deadline passed at" in refused.json()["error"]["message"]
    assert "deadline_s in the API" in refused.json()["error"]["message"]
    # NaN (which JSON has no form for, but Python's parser takes), zero, negative, too far.
    for sent in ("NaN", "0", "-5", "1e12"):
        bad = api.call("POST", replay, key=admin, content=f'{{"deadline_s": {sent}}}',
                       headers={"Content-Type": "application/json"})  # fmt: skip
        assert bad.status_code == 422, (sent, bad.text)
        problems = bad.json()["error"]["problems"]
        assert [(p["in"], p["path"]) for p in problems] == [("body", "deadline_s")], sent
    assert "deadline must be a positive number of seconds, at most 315360000" in bad.text
    assert db.run_status(run_id) == "failed", "a refused replay changes nothing"

    replayed = api.call("POST", replay, key=admin, json={"deadline_s": 600})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["sent"][0] == "doomed"
    left = db.scalar("SELECT extract(epoch FROM deadline_at - now()) FROM runs WHERE id = :id",
                     id=run_id)  # fmt: skip
    assert 590 < float(left) <= 600
    assert _wait(api, producer, run_id)["status"] == "succeeded"
    # The service's own refusal (too far) is recorded; a body the schema refuses never
    # reaches the route, as with every other body.
    assert _audit(env, "acme", "run.replay") == [
        ("run.replay", f"run:{run_id}", "failed"),
        ("run.replay", f"run:{run_id}", "invalid"),
        ("run.replay", f"run:{run_id}", "ok"),
    ]


def test_an_admin_approves_and_rejects_held_steps_over_http(
    api: Api, env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    start_worker("--concurrency", "2")
    producer, _ = make_key("acme", "producer")
    viewer, _ = make_key("acme", "viewer")
    admin, admin_id = make_key("acme", "admin")
    stranger, _ = make_key("globex", "admin")
    first = _submit(api, producer, "approval-echo", "draft")
    second = _submit(api, producer, "approval-echo", "risky")

    def pending() -> list[Any]:
        answer = api.call("GET", "/v1/approvals", key=viewer)
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    wait_until(lambda: len(pending()) == 2, 60, "both runs to await approval")
    listed = pending()
    assert {(a["run_id"], a["step_id"], a["status"]) for a in listed} == {
        (first, "send", "pending"),
        (second, "send", "pending"),
    }
    assert all(a["input"] is None for a in listed)  # a listing never shows the input
    assert api.call("GET", "/v1/approvals", key=stranger).json() == []

    approve = f"/v1/runs/{first}/steps/send/approve"
    assert api.call("POST", approve, key=producer).status_code == 403
    assert api.call("POST", approve, key=stranger).status_code == 404
    assert api.call("POST", f"/v1/runs/{first}/steps/nope/approve", key=admin).status_code == 404

    approved = api.call("POST", approve, key=admin, json={"input": {"text": "edited"}})
    assert approved.status_code == 200, approved.text
    decision = approved.json()
    assert (decision["status"], decision["decided_by"]) == ("approved", f"key:{admin_id}")
    assert decision["input_edited"] is True
    done = _wait(api, producer, first)
    assert done["status"] == "succeeded"
    assert {s["step_id"]: s["output"] for s in done["steps"]}["after"] == {"text": "edited"}

    reject = f"/v1/runs/{second}/steps/send/reject"
    unreasoned = api.call("POST", reject, key=admin, json={})
    assert unreasoned.status_code == 422
    assert unreasoned.json()["error"]["problems"][0]["path"] == "reason"
    rejected = api.call("POST", reject, key=admin, json={"reason": "too risky"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["decision_reason"]) == (
        "rejected",
        "too risky",
    )
    assert _wait(api, producer, second)["status"] == "failed"

    twice = api.call("POST", approve, key=admin)
    assert twice.status_code == 409
    assert f"key:{admin_id}" in twice.json()["error"]["message"]
    assert pending() == []
    assert _audit(env, "acme", "approval.") == [
        ("approval.approve", f"step:{first}/send", "denied"),
        ("approval.approve", f"step:{first}/nope", "not_found"),
        ("approval.approve", f"step:{first}/send", "ok"),
        ("approval.reject", f"step:{second}/send", "ok"),
        ("approval.approve", f"step:{first}/send", "failed"),
    ]


def test_an_admin_manages_its_tenants_service_instances_and_a_viewer_reads_them(
    api: Api, env: dict[str, str]
) -> None:
    admin, _ = make_key("acme", "admin")
    viewer, _ = make_key("acme", "viewer")
    stranger, _ = make_key("globex", "admin")
    body = {
        "name": "partner",
        "url": "http://partner.example:8080",
        "id": "partner-1",
        "ttl_s": 30,
        "meta": {"zone": "a"},
    }

    assert api.call("POST", "/v1/services", key=viewer, json=body).status_code == 403
    registered = api.call("POST", "/v1/services", key=admin, json=body)
    assert registered.status_code == 201, registered.text
    assert registered.headers["location"] == "/v1/services/instances/partner-1"
    instance = registered.json()
    assert (instance["service"], instance["tenant"], instance["status"]) == (
        "partner",
        "acme",
        "passing",
    )
    # The same id is not another tenant's to take, nor to see.
    taken = api.call("POST", "/v1/services", key=stranger, json=body)
    assert taken.status_code == 422
    assert api.call("GET", "/v1/services/partner", key=stranger).json() == []

    read = api.call("GET", "/v1/services/partner", key=viewer)
    assert [i["id"] for i in read.json()] == ["partner-1"]
    passing = api.call("GET", "/v1/services/partner", key=viewer, params={"status": "passing"})
    assert [i["id"] for i in passing.json()] == ["partner-1"]
    critical = api.call("GET", "/v1/services/partner", key=viewer, params={"status": "critical"})
    assert critical.json() == []
    bogus = api.call("GET", "/v1/services/partner", key=viewer, params={"status": "fine"})
    assert bogus.status_code == 422
    shown = api.call("GET", registered.headers["location"], key=viewer)
    assert shown.json()["meta"] == {"zone": "a"}

    heartbeat = "/v1/services/instances/partner-1/heartbeat"
    assert api.call("PUT", heartbeat, key=viewer).status_code == 403
    assert api.call("PUT", heartbeat, key=stranger).status_code == 404
    beat = api.call("PUT", heartbeat, key=admin)
    assert beat.status_code == 200, beat.text
    assert beat.json()["last_heartbeat_at"] is not None

    assert api.call("DELETE", "/v1/services/instances/partner-1", key=stranger).status_code == 404
    gone = api.call("DELETE", "/v1/services/instances/partner-1", key=admin)
    assert (gone.status_code, gone.content) == (204, b"")
    assert api.call("GET", "/v1/services/partner", key=viewer).json() == []
    assert api.call("PUT", heartbeat, key=admin).status_code == 404

    assert _audit(env, "acme", "service.") == [
        ("service.register", "instance:partner-1", "denied"),
        ("service.register", "instance:partner-1", "ok"),
        ("service.heartbeat", "instance:partner-1", "denied"),
        ("service.heartbeat", "instance:partner-1", "ok"),
        ("service.deregister", "instance:partner-1", "ok"),
        ("service.heartbeat", "instance:partner-1", "not_found"),
    ]
    assert _audit(env, "globex", "service.") == [
        ("service.register", "instance:partner-1", "invalid"),
        ("service.heartbeat", "instance:partner-1", "not_found"),
        ("service.deregister", "instance:partner-1", "not_found"),
    ]


def test_each_refused_argument_is_named_where_the_request_has_it(
    api: Api, env: dict[str, str]
) -> None:
    """The service's own checks name an argument by its first word: the API put every
    such problem at ``body`` with no path, a query parameter or a path segment alike."""
    admin, _ = make_key("acme", "admin")
    run = "00000000-0000-4000-8000-000000000000"

    def places(method: str, path: str, **sent: Any) -> list[tuple[str, str]]:
        answer = api.call(method, path, key=admin, **sent)
        assert answer.status_code == 422, answer.text
        return [(p["in"], p["path"]) for p in answer.json()["error"]["problems"]]

    registration = {"name": "s\u0000", "url": "ftp://x", "id": "a b", "ttl_s": 1e308,
                    "meta": {"k": "\u0000"}}  # fmt: skip
    assert places("POST", "/v1/services", json=registration) == [
        ("body", "name"), ("body", "url"), ("body", "id"), ("body", "ttl_s"), ("body", "meta")
    ]  # fmt: skip
    for method in ("GET", "DELETE"):
        assert places(method, "/v1/services/instances/%00") == [("path", "instance_id")]
    assert places("PUT", "/v1/services/instances/%00/heartbeat") == [("path", "instance_id")]
    assert places("GET", "/v1/services/%00", params={"status": "passing"}) == [("path", "name")]
    assert places("GET", "/v1/approvals", params={"pipeline": "\u0000"}) == [("query", "pipeline")]
    assert places("POST", f"/v1/runs/{run}/steps/%00/approve") == [("path", "step_id")]
    rejected = places("POST", f"/v1/runs/{run}/steps/send/reject", json={"reason": "\u0000"})
    assert rejected == [("body", "reason")]
    submitted = {"pipeline": "echo-one", "input": {"text": "x"}, "idempotency_key": "\u0000",
                 "deadline_s": 1e12, "budget_usd": 1e9}  # fmt: skip
    assert places("POST", "/v1/runs", json=submitted) == [
        ("body", "idempotency_key"), ("body", "deadline_s")
    ]  # fmt: skip


def test_what_the_operator_changes_of_a_tenants_is_in_that_tenants_audit_trail(
    api: Api, env: dict[str, str]
) -> None:
    """Only a submit filed an operator's record under the tenant it concerned: its cancel,
    heartbeat or deregistration of a tenant's run or instance was filed under no tenant, so
    the tenant's trail (hive audit list --tenant) did not show it."""
    admin, _ = make_key("acme", "admin")
    operator, operator_id = make_key(None)
    body = {"name": "partner", "url": "http://partner.example:8080", "id": "partner-1"}
    assert api.call("POST", "/v1/services", key=admin, json=body).status_code == 201
    run_id = _submit(api, admin, "echo-one", "x")  # no worker: it stays queued

    calls = [
        ("POST", "/v1/services", {**body, "url": "http://partner.example:9090"}),
        ("PUT", "/v1/services/instances/partner-1/heartbeat", None),
        ("DELETE", "/v1/services/instances/partner-1", None),
        ("POST", f"/v1/runs/{run_id}/cancel", None),
    ]
    for method, path, sent in calls:
        answer = api.call(method, path, key=operator, json=sent)
        assert answer.status_code < 300, answer.text

    listed = run_hive("audit", "list", "--tenant", "acme", "--json", env=env)
    by_operator = [
        (r["action"], r["target"], r["outcome"])
        for r in reversed(json.loads(listed.stdout))
        if r["key_id"] == operator_id
    ]
    assert by_operator == [
        ("service.register", "instance:partner-1", "ok"),
        ("service.heartbeat", "instance:partner-1", "ok"),
        ("service.deregister", "instance:partner-1", "ok"),
        ("run.cancel", f"run:{run_id}", "ok"),
    ]


def test_a_failure_of_the_farm_is_told_to_a_tenant_without_the_brokers_words(
    api: Api, env: dict[str, str], redis_db: tuple[Any, int]
) -> None:
    """A DispatchError was answered 409 with the broker's reply, and the step's and run's
    error kept it for any viewer (a connection error's names the broker's host and port)."""
    broker, _ = redis_db
    broker.set("fault-taken", "another program's value")  # the queue's key holds a string
    producer, _ = make_key("acme", "producer")
    body = {"pipeline": "fault-taken-root", "input": {"text": "x"}, "priority": "critical"}

    answer = api.call("POST", "/v1/runs", key=producer, json=body)
    assert answer.status_code == 409, answer.text
    [run_id] = [str(r.id) for r in db.rows("SELECT id FROM runs")]
    assert answer.json()["error"] == {
        "type": "conflict",
        "message": f"run {run_id}: could not dispatch step 'a': the farm could not send it "
        "to its workers; it failed and is in the dead letters",
    }
    shown = api.call("GET", f"/v1/runs/{run_id}", key=producer).json()
    letters = api.call("GET", "/v1/dead-letters", key=producer).json()
    told = {"type": "dispatch_error", "message": "the farm could not send the step to its workers"}
    assert shown["error"] == {**told, "step_id": "a"}
    assert shown["steps"][0]["error"] == letters[0]["error"] == told
    # The operator keeps the broker's words.
    operator = run_hive("runs", "show", run_id, "--json", env=env)
    assert "WRONGTYPE" in json.loads(operator.stdout)["steps"][0]["error"]["message"]
    assert "WRONGTYPE" in api.log()
