"""Admission control over HTTP: each tenant's request rate, shared by every `hive api`
process through Redis (429, `Retry-After`, `RateLimit-*`), its cap on runs in flight and
its cap on registered service instances (429 saying so), and each client address's failed
authentications (429 before a key is looked up). Real `hive api` processes, real workers,
PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hive import Client
from hive.errors import TooManyServiceInstances
from tests.support.api import Api, make_key
from tests.support.commands import run_hive
from tests.support.processes import HiveProcess

BURST = 3
# So slow that no request is given back while a test runs: the counts never depend on time.
PER_S = "0.001"
CAP = 2
# Each address's failed authentications (of well-formed keys) at once.
AUTH_BURST = 5


@pytest.fixture(scope="module")
def limited(
    hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, Api]]:
    """Two `hive api` processes sharing one farm, and so each tenant's rate."""
    env = {
        **os.environ,
        **hive_env,
        "HIVE_API_REQUESTS_PER_S": PER_S,
        "HIVE_API_REQUEST_BURST": str(BURST),
        "HIVE_API_AUTH_FAILURES_PER_S": PER_S,
        "HIVE_API_AUTH_FAILURE_BURST": str(AUTH_BURST),
    }
    logs = tmp_path_factory.mktemp("limited")
    first = Api(env, logs / "first.log")
    try:
        second = Api(env, logs / "second.log")
    except Exception:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


@pytest.fixture(scope="module")
def capped(hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    env = {
        **os.environ,
        **hive_env,
        "HIVE_API_REQUESTS_PER_S": "0",
        "HIVE_API_MAX_RUNS_IN_FLIGHT": str(CAP),
    }
    server = Api(env, tmp_path_factory.mktemp("capped") / "api.log")
    yield server
    server.stop()


def _submit(api: Api, key: str, **fields: Any) -> Any:
    body = {"pipeline": "echo-one", "input": {"text": "hi"}, **fields}
    return api.call("POST", "/v1/runs", key=key, json=body)


def test_a_tenants_rate_is_shared_by_every_api_process(
    limited: tuple[Api, Api], env: dict[str, str]
) -> None:
    first, second = limited
    key, _ = make_key("acme", "viewer")
    other, _ = make_key("globex", "viewer")

    answers = [first.call("GET", "/v1/pipelines", key=key) for _ in range(BURST - 1)]
    answers.append(second.call("GET", "/v1/runs", key=key))
    assert [a.status_code for a in answers] == [200] * BURST
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
    assert {a.headers["ratelimit-limit"] for a in answers} == {str(BURST)}
    # The whole burst comes back one request per 1000 s: 3000 s from empty.
    assert 2990 <= int(answers[-1].headers["ratelimit-reset"]) <= 3000

    for api in (first, second):
        refused = api.call("GET", "/v1/pipelines", key=key)
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limited"
        assert 990 <= int(refused.headers["retry-after"]) <= 1000
        assert refused.headers["ratelimit-remaining"] == "0"
        assert refused.headers["ratelimit-limit"] == str(BURST)
        assert refused.headers["x-content-type-options"] == "nosniff"

    # Another tenant has its own rate.
    theirs = second.call("GET", "/v1/pipelines", key=other)
    assert (theirs.status_code, theirs.headers["ratelimit-remaining"]) == (200, "2")


def test_requests_without_a_valid_key_spend_no_rate(
    limited: tuple[Api, Api], env: dict[str, str]
) -> None:
    first, _ = limited
    key, _ = make_key("acme", "viewer")
    for _ in range(BURST + 2):
        assert first.call("GET", "/v1/runs", key=key + "x").status_code == 401
        assert first.call("GET", "/v1/runs").status_code == 401

    answer = first.call("GET", "/v1/runs", key=key)
    assert (answer.status_code, answer.headers["ratelimit-remaining"]) == (200, str(BURST - 1))
    # Health and readiness are no tenant's: never limited, no RateLimit headers.
    for _ in range(BURST + 2):
        ready = first.call("GET", "/readyz")
        assert ready.status_code == 200 and "ratelimit-limit" not in ready.headers


def test_an_address_that_failed_too_often_is_answered_429_by_every_api_process(
    limited: tuple[Api, Api], env: dict[str, str]
) -> None:
    """Each well-formed key cost a PostgreSQL lookup before any limit applied: a flood of
    made-up keys was a flood of queries, answered 401 for ever."""
    first, second = limited
    key, _ = make_key("acme", "viewer")
    assert first.call("GET", "/v1/runs", key=key).status_code == 200

    def made_up() -> str:
        return f"hive_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"

    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    failed = [first.call("GET", "/v1/runs", key=made_up()) for _ in range(AUTH_BURST - 3)]
    failed += [
        first.call("GET", "/v1/runs", key=wrong_secret),
        second.call("GET", "/v1/runs", key=made_up()),
        # Refused unread (no key, a malformed one, two keys): these spend nothing.
        first.call("GET", "/v1/runs"),
        second.call("GET", "/v1/runs", key=key + "x"),
        first.call("GET", "/v1/runs", key=key, headers={"X-API-Key": made_up()}),
        second.call("GET", "/v1/runs", key=made_up()),
    ]
    assert [a.status_code for a in failed] == [401] * len(failed)
    assert len({a.content for a in failed}) == 1
    assert all(a.headers["www-authenticate"] == "Bearer" for a in failed)

    for api in (first, second):
        refused = api.call("GET", "/v1/runs", key=made_up())
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["type"] == "rate_limited"
        assert "failed authentications" in refused.json()["error"]["message"]
        assert 990 <= int(refused.headers["retry-after"]) <= 1000
        assert "ratelimit-limit" not in refused.headers
    # The key that authenticated is not held back by its address's failures.
    assert first.call("GET", "/v1/runs", key=key).status_code == 200


def test_error_answers_carry_the_rate_headers_too(
    limited: tuple[Api, Api], env: dict[str, str]
) -> None:
    first, _ = limited
    key, _ = make_key("acme", "viewer")
    missing = first.call("GET", "/v1/runs/00000000-0000-0000-0000-000000000000", key=key)
    denied = _submit(first, key)
    assert (missing.status_code, denied.status_code) == (404, 403)
    assert [missing.headers["ratelimit-remaining"], denied.headers["ratelimit-remaining"]] == [
        "2",
        "1",
    ]


def test_a_submit_over_the_runs_in_flight_cap_is_429_until_runs_finish(
    capped: Api, env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    key, key_id = make_key("acme", "producer")
    other, _ = make_key("globex", "producer")
    # No worker yet: the runs stay in flight.
    runs = [_submit(capped, key, idempotency_key=f"order-{i}") for i in range(CAP)]
    assert [r.status_code for r in runs] == [202] * CAP
    assert "ratelimit-limit" not in runs[0].headers  # no rate set

    refused = _submit(capped, key, idempotency_key="order-new")
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["type"] == "too_many_runs"
    assert "'acme' has 2 runs in flight" in error["message"]
    assert "HIVE_API_MAX_RUNS_IN_FLIGHT" in error["message"]
    assert refused.headers["retry-after"] == "1"
    # A repeat of a submit that went through gets its run back, cap or not.
    again = _submit(capped, key, idempotency_key="order-0")
    assert (again.status_code, again.json()["id"]) == (200, runs[0].json()["id"])
    # Another tenant has its own cap.
    assert _submit(capped, other).status_code == 202

    start_worker()
    for run in runs:
        waited = capped.call(
            "GET", f"/v1/runs/{run.json()['id']}/wait", key=key, params={"timeout_s": 60}
        )
        assert waited.json()["status"] == "succeeded"
    assert _submit(capped, key, idempotency_key="order-new").status_code == 202

    listed = run_hive("audit", "list", "--tenant", "acme", "--json", env=env)
    outcomes = [
        (r["action"], r["target"], r["outcome"])
        for r in reversed(json.loads(listed.stdout))
        if r["key_id"] == key_id
    ]
    assert outcomes[CAP] == ("run.submit", "pipeline:echo-one", "refused")
    assert [o[2] for o in outcomes] == ["ok"] * CAP + ["refused", "existing", "ok"]


def test_the_cap_counts_only_the_tenants_unfinished_runs(capped: Api, env: dict[str, str]) -> None:
    key, _ = make_key("acme", "producer")
    first = _submit(capped, key).json()
    assert capped.call("POST", f"/v1/runs/{first['id']}/cancel", key=key).status_code == 200
    # A cancelled run is finished: two more fit.
    assert [_submit(capped, key).status_code for _ in range(CAP)] == [202] * CAP
    assert _submit(capped, key).status_code == 429


def test_a_registration_over_the_instance_cap_is_429_and_the_client_raises_it_typed(
    env: dict[str, str], tmp_path: Path
) -> None:
    server = Api({**env, "HIVE_API_REQUESTS_PER_S": "0", "HIVE_MAX_SERVICE_INSTANCES": "1"},
                 tmp_path / "api.log")  # fmt: skip
    try:
        key, key_id = make_key("acme", "admin")
        body = {"name": "tool", "url": "http://tool-1/", "id": "tool-1"}
        assert server.call("POST", "/v1/services", key=key, json=body).status_code == 201

        refused = server.call("POST", "/v1/services", key=key, json={**body, "id": "tool-2"})
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["type"] == "too_many_instances"
        assert "'acme' has 1 service instances registered" in error["message"]
        assert "HIVE_MAX_SERVICE_INSTANCES" in error["message"]
        # The instance it has: heartbeats and registering it again are never refused.
        beat = server.call("PUT", "/v1/services/instances/tool-1/heartbeat", key=key)
        again = server.call("POST", "/v1/services", key=key, json={**body, "url": "http://b/"})
        assert (beat.status_code, again.status_code) == (200, 201)

        with (
            Client(base_url=server.base_url, api_key=key) as client,
            pytest.raises(TooManyServiceInstances) as capped,
        ):
            client.services.register("tool", "http://tool-3/")
        assert (capped.value.tenant, capped.value.cap) == ("acme", 1)
    finally:
        server.stop()
    listed = run_hive("audit", "list", "--tenant", "acme", "--json", env=env)
    outcomes = [r["outcome"] for r in json.loads(listed.stdout) if r["key_id"] == key_id]
    assert outcomes.count("refused") == 2
