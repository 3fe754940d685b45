"""Schemathesis over the committed OpenAPI document, against a real `hive api` on real
PostgreSQL and Redis: every operation, with data that fits the document and data that does
not, from every kind of caller (each role, an operator, no key, a bad key). No answer is a
5xx, and each has a documented status, content type and body.

Random ids only ever meet 404s, so part of the cases are aimed at things that exist (a
finished run, a failed one, one held for approval, a queued one, a registered instance):
their 200s and 409s are checked against the document too.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import db
from tests.support.api import Api, make_key
from tests.support.processes import HiveProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Admins reach the most code, so they call most; a length prime to AIMED's mixes the two.
CALLERS = ["admin", "producer", "admin", "viewer", "admin", "none", "operator", "bad"]
AIMED = [True, True, False]
SERVICE = "search"
# Generated cases per operation, besides schemathesis's boundary cases: bounded, so the
# module stays near half a minute on a quiet machine. 100 finds more (it found the UTC
# offsets PostgreSQL refuses, kept in test_api.py): try it after changing the API.
EXAMPLES = 15

# The committed document: test_api.py holds it equal to the one `hive api` serves.
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")

pytestmark = pytest.mark.timeout(300)


@dataclass
class Farm:
    api: Api
    headers: dict[str, dict[str, str]]
    finished: str
    failed: str
    held: str
    held_for_reject: str
    queued: str
    instance: str


def _submit(api: Api, headers: dict[str, str], pipeline: str) -> str:
    body = {"pipeline": pipeline, "input": {"text": "seed"}}
    answer = api.call("POST", "/v1/runs", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _status(api: Api, headers: dict[str, str], run_id: str) -> Any:
    return api.call("GET", f"/v1/runs/{run_id}", headers=headers).json()


@pytest.fixture(scope="module")
def farm(
    hive_env: dict[str, str],
    redis_db: tuple[redis.Redis, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Farm]:
    """One `hive api` (no request rate: the cases come fast) and the things cases aim at,
    made by a worker that is stopped before the cases start (nothing moves under them)."""
    db.empty_farm(redis_db[0])
    env = {**os.environ, **hive_env, "HIVE_API_REQUESTS_PER_S": "0"}
    logs = tmp_path_factory.mktemp("schema")
    api = Api(env, logs / "api.log")
    try:
        headers = {
            "admin": {"Authorization": f"Bearer {make_key('acme', 'admin')[0]}"},
            "producer": {"X-API-Key": make_key("acme", "producer")[0]},
            "viewer": {"X-API-Key": make_key("acme", "viewer")[0]},
            "operator": {"Authorization": f"Bearer {make_key(None, 'operator')[0]}"},
            "none": {},
            "bad": {"Authorization": "Bearer hive_0123456789abcdef_not-a-key"},
        }
        admin = headers["admin"]
        worker = HiveProcess(["worker", "--hostname", "schema@test"], env, logs / "worker.log")
        try:
            worker.wait_for_log("ready.", timeout_s=60)
            finished = _submit(api, admin, "echo-one")
            failed = _submit(api, admin, "fails-midway")
            held = [_submit(api, admin, "approval-echo") for _ in range(2)]
            wait_until(
                lambda: (
                    _status(api, admin, finished)["status"] == "succeeded"
                    and _status(api, admin, failed)["status"] == "failed"
                    and {_status(api, admin, run)["status"] for run in held}
                    == {"awaiting_approval"}
                ),
                60,
                "the seeded runs to settle",
            )
        finally:
            worker.stop()
        farm = Farm(api, headers, finished, failed, *held, _submit(api, admin, "echo-one"), "")
        farm.instance = _register(farm)
        yield farm
    finally:
        api.stop()


def _register(farm: Farm) -> str:
    body = {"name": SERVICE, "url": "http://127.0.0.1:9/"}
    registered = farm.api.call("POST", "/v1/services", json=body, headers=farm.headers["admin"])
    assert registered.status_code == 201, registered.text
    return str(registered.json()["id"])


@dataclass
class Rotation:
    """Which caller makes each case, and whether it is aimed: the same for an operation's
    cases whatever ran before them (each operation's test gets its own)."""

    callers: Iterator[str] = field(default_factory=lambda: itertools.cycle(CALLERS))
    aims: Iterator[bool] = field(default_factory=lambda: itertools.cycle(AIMED))
    runs: Iterator[int] = field(default_factory=itertools.count)


@pytest.fixture
def rotation() -> Rotation:
    return Rotation()


def _aim(case: schemathesis.Case, farm: Farm, rotation: Rotation) -> None:
    """Point the case at things that exist, keeping the rest of what was generated."""
    path, method = case.operation.path, case.operation.method.upper()
    params = dict(case.path_parameters or {})
    if "step_id" in params:
        held = farm.held_for_reject if path.endswith("/reject") else farm.held
        params.update(run_id=held, step_id="send")
    elif path.startswith("/v1/dead-letters/"):
        params["run_id"] = farm.failed
    elif path.endswith("/wait"):
        # Only a finished run: a long poll on another would hold the case for timeout_s.
        params["run_id"] = farm.finished
    elif "run_id" in params:
        runs = [farm.finished, farm.failed, farm.held, farm.queued]
        params["run_id"] = runs[next(rotation.runs) % len(runs)]
    if "instance_id" in params:
        # A deregistration gets an instance of its own: the others' stays registered.
        params["instance_id"] = _register(farm) if method == "DELETE" else farm.instance
    if path == "/v1/services/{name}":
        params["name"] = SERVICE
    if path == "/v1/pipelines/{name}":
        params["name"] = "echo-one"
    case.path_parameters = params
    if (path, method) == ("/v1/runs", "POST") and isinstance(case.body, dict):
        case.body = {**case.body, "pipeline": "echo-one", "input": {"text": "fuzz"}}
    if (path, method) == ("/v1/services", "POST") and isinstance(case.body, dict):
        case.body = {**case.body, "name": SERVICE, "url": "http://127.0.0.1:9/"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_answer_breaks_the_document(
    case: schemathesis.Case, farm: Farm, rotation: Rotation
) -> None:
    # The document's security schemes make schemathesis send keys of its own: ours instead.
    case.headers = {
        name: value
        for name, value in (case.headers or {}).items()
        if name.lower() not in ("authorization", "x-api-key")
    }
    if next(rotation.aims):
        _aim(case, farm, rotation)
    case.call_and_validate(
        base_url=farm.api.base_url, headers=farm.headers[next(rotation.callers)], checks=CHECKS,
        timeout=70,
    )  # fmt: skip
