"""The HTTP API as a producer app in another language uses it: a key made with `hive keys`,
runs submitted, waited for and read over HTTP, and 401/403/404/413/422 exactly where they
belong. A real `hive api` process, real workers, real PostgreSQL and Redis."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.support import db
from tests.support.api import Api, create_key, make_key
from tests.support.commands import describe, run_hive
from tests.support.dumps import database_texts
from tests.support.processes import HiveProcess
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
MAX_BODY = 20_000


@pytest.fixture(scope="module")
def api(hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One `hive api` for the module (it keeps no state: each test starts from clean tables)."""
    # The largest input it takes leaves room in a body for the rest of a submit.
    env = {
        **os.environ,
        **hive_env,
        "HIVE_API_MAX_BODY_BYTES": str(MAX_BODY),
        "HIVE_MAX_INPUT_BYTES": str(MAX_BODY - 4096),
    }
    # Two worker processes: each builds its app and logs through Hive's handler.
    server = Api(env, tmp_path_factory.mktemp("api") / "api.log", "--workers", "2")
    yield server
    server.stop()


def _submit(api: Api, key: str, text: str = "hi", **fields: Any) -> Any:
    return api.call(
        "POST",
        "/v1/runs",
        key=key,
        json={"pipeline": "echo-one", "input": {"text": text}, **fields},
    )


def test_a_producer_submits_waits_and_reads_its_run_over_http(
    api: Api, env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    start_worker()
    key, _ = create_key(env, "--tenant", "acme", "--role", "producer", "--name", "app")

    submitted = _submit(api, key, "hello", idempotency_key="order-1")
    assert submitted.status_code == 202, submitted.text
    run = submitted.json()
    assert submitted.headers["location"] == f"/v1/runs/{run['id']}"
    assert run["tenant"] == "acme" and run["pipeline"] == "echo-one"

    waited = api.call("GET", f"/v1/runs/{run['id']}/wait", key=key, params={"timeout_s": 30})
    assert waited.status_code == 200, waited.text
    assert waited.json()["status"] == "succeeded"
    assert waited.json()["output"] == {"echo": {"text": "hello"}}

    read = api.call("GET", submitted.headers["location"], key=key)
    assert read.status_code == 200
    assert [s["step_id"] for s in read.json()["steps"]] == ["echo"]
    # The same field names as `hive runs show --json`.
    shown = run_hive("runs", "show", run["id"], "--json", env=env)
    assert sorted(json.loads(shown.stdout)) == sorted(read.json()), describe(shown)

    again = _submit(api, key, "hello", idempotency_key="order-1")
    assert again.status_code == 200
    assert again.json()["id"] == run["id"]
    # The key again with another input: the caller's mistake, named where it sent the key.
    reused = _submit(api, key, "hello again", idempotency_key="order-1")
    assert reused.status_code == 422, reused.text
    assert [(p["in"], p["path"]) for p in reused.json()["error"]["problems"]] == [
        ("body", "idempotency_key")
    ]
    assert run["id"] in reused.json()["error"]["problems"][0]["message"]

    pipelines = api.call("GET", "/v1/pipelines", key=key)
    assert pipelines.status_code == 200
    assert "echo-one" in [p["name"] for p in pipelines.json()]
    one = api.call("GET", "/v1/pipelines/echo-one", key=key).json()
    assert one["input_schema"]["required"] == ["text"]
    # The file's name, not where the server keeps it.
    assert one["source"] == "echo-one.yaml"
    assert not [p["source"] for p in pipelines.json() if "/" in p["source"]]
    assert [s["step_id"] for s in one["steps"]] == ["echo"]


def test_long_polls_hold_no_thread_so_a_cancel_still_gets_through(
    api: Api, env: dict[str, str]
) -> None:
    key, _ = make_key("acme", "producer")
    run = _submit(api, key).json()  # no worker: it stays queued
    waiters = 90  # more than both API processes' thread pools (40 each) together

    with ThreadPoolExecutor(waiters) as pool:
        waits = [
            pool.submit(
                api.call, "GET", f"/v1/runs/{run['id']}/wait", key=key, params={"timeout_s": 60}
            )
            for _ in range(waiters)
        ]
        cancelled = api.call("POST", f"/v1/runs/{run['id']}/cancel", key=key)
        answers = [wait.result() for wait in waits]

    assert cancelled.status_code == 200
    # Had the waits held threads, the cancel would have queued behind them until they
    # timed out, and they would have answered the run still queued.
    assert {(a.status_code, a.json()["status"]) for a in answers} == {(200, "cancelled")}


def test_missing_or_bad_keys_are_401_alike(api: Api, env: dict[str, str]) -> None:
    key, key_id = make_key("acme", "viewer")
    revoked, revoked_id = make_key("acme", "viewer")
    expired, expired_id = create_key(env, "--tenant", "acme", "--role", "viewer", "--expires", "1d")
    assert run_hive("keys", "revoke", revoked_id, env=env).returncode == 0
    db.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id",
               id=expired_id)  # fmt: skip
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")

    answers = [
        api.call("GET", "/v1/runs"),
        api.call("GET", "/v1/runs", key="nonsense"),
        api.call("GET", "/v1/runs", key=wrong_secret),
        api.call("GET", "/v1/runs", key=revoked),
        api.call("GET", "/v1/runs", key=expired),
        api.call("GET", "/v1/runs", headers={"Authorization": f"Basic {key}"}),
        api.call("GET", "/v1/runs", key=key, headers={"X-API-Key": revoked}),
        api.call("POST", "/v1/runs", content=b"{not json", headers={"X-API-Key": "x"}),
        api.call("POST", "/v1/runs", key=revoked, json={"pipeline": "echo-one", "x": 1}),
    ]

    assert [a.status_code for a in answers] == [401] * len(answers)
    assert len({a.text for a in answers}) == 1, "a 401 must not say what was wrong"
    assert answers[0].headers["www-authenticate"] == "Bearer"
    assert api.call("GET", "/v1/runs", headers={"X-API-Key": key}).status_code == 200
    assert api.call("GET", "/v1/runs", key=key).status_code == 200
    listed = run_hive("keys", "list", "--json", env=env)
    status = {k["id"]: k["status"] for k in json.loads(listed.stdout)}
    assert status == {key_id: "active", revoked_id: "revoked", expired_id: "expired"}


def test_a_viewer_reads_but_cannot_submit_or_cancel(api: Api, env: dict[str, str]) -> None:
    viewer, _ = make_key("acme", "viewer")
    producer, _ = make_key("acme", "producer")
    run = _submit(api, producer).json()

    assert _submit(api, viewer).status_code == 403
    cancel = api.call("POST", f"/v1/runs/{run['id']}/cancel", key=viewer)
    assert cancel.status_code == 403
    assert cancel.json()["error"]["type"] == "forbidden"
    assert api.call("GET", f"/v1/runs/{run['id']}", key=viewer).status_code == 200

    cancelled = api.call("POST", f"/v1/runs/{run['id']}/cancel", key=producer)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"id": run["id"], "cancelled": True, "status": "cancelled"}


def test_a_tenant_never_sees_another_tenants_run(api: Api, env: dict[str, str]) -> None:
    a_key, _ = make_key("a", "admin")
    b_key, _ = make_key("b", "admin")
    operator, _ = create_key(env, "--all-tenants", "--name", "ops")
    run = _submit(api, a_key).json()
    missing = "00000000-0000-4000-8000-000000000000"

    for path in (f"/v1/runs/{run['id']}", f"/v1/runs/{run['id']}/wait?timeout_s=0.1"):
        theirs = api.call("GET", path, key=b_key)
        nobody = api.call("GET", path.replace(run["id"], missing), key=b_key)
        assert theirs.status_code == nobody.status_code == 404
        assert (
            theirs.json()["error"]["message"].replace(run["id"], missing)
            == (nobody.json()["error"]["message"])
        )
    assert api.call("POST", f"/v1/runs/{run['id']}/cancel", key=b_key).status_code == 404
    assert api.call("GET", "/v1/runs", key=b_key).json() == {"runs": [], "next_cursor": None}
    other = _submit(api, a_key, tenant="b")
    assert other.status_code == 403
    assert [r["id"] for r in api.call("GET", "/v1/runs", key=operator).json()["runs"]] == [
        run["id"]
    ]
    assert api.call("GET", f"/v1/runs/{run['id']}", key=operator).status_code == 200
    assert api.call("GET", "/v1/runs/not-a-uuid", key=a_key).status_code == 404


def test_invalid_requests_are_422_naming_each_problem(api: Api, env: dict[str, str]) -> None:
    key, _ = make_key("acme", "producer")

    def problems(answer: Any) -> list[tuple[str, str]]:
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["type"] == "invalid"
        return [(p["in"], p["path"]) for p in answer.json()["error"]["problems"]]

    body = {"pipeline": "echo-one", "input": {}, "priority": "urgent", "x": 1}
    extra = api.call("POST", "/v1/runs", key=key, json=body)
    assert problems(extra) == [("body", "priority"), ("body", "x")]
    unfit = _submit(api, key, text=5)  # type: ignore[arg-type]
    assert problems(unfit) == [("body", "input.text")]
    assert "is not of type 'string'" in unfit.json()["error"]["problems"][0]["message"]
    unknown = api.call("POST", "/v1/runs", key=key, json={"pipeline": "nope", "input": {}})
    assert problems(unknown) == [("body", "pipeline")]
    not_json = api.call("POST", "/v1/runs", key=key, content=b"{not json",
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert problems(not_json) == [("body", "")]
    for unparsable in (b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"pipeline": "\xff"}',
                       b'{"input": ' + b"1" * 5000 + b"}"):  # fmt: skip
        answer = api.call("POST", "/v1/runs", key=key, content=unparsable,
                          headers={"Content-Type": "application/json"})  # fmt: skip
        assert problems(answer) == [("body", "")]
    assert problems(api.call("GET", "/v1/runs", key=key, params={"limit": 0})) == [
        ("query", "limit")
    ]
    assert problems(api.call("GET", "/v1/runs", key=key, params={"status": "nope"})) == [
        ("query", "status")
    ]
    assert problems(api.call("GET", "/v1/runs", key=key, params={"cursor": "garbage"})) == [
        ("query", "cursor")
    ]
    assert problems(api.call("GET", "/v1/runs/x/wait", key=key, params={"timeout_s": 61})) == [
        ("query", "timeout_s")
    ]
    assert db.scalar("SELECT count(*) FROM runs") == 0


def test_a_body_over_the_cap_is_413_declared_or_chunked(api: Api, env: dict[str, str]) -> None:
    key, _ = make_key("acme", "producer")
    big = json.dumps({"pipeline": "echo-one", "input": {"text": "x" * MAX_BODY}}).encode()

    declared = api.call("POST", "/v1/runs", key=key, content=big,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    chunked = api.call("POST", "/v1/runs", key=key, content=iter([big[:1000], big[1000:]]),
                       headers={"Content-Type": "application/json"})  # fmt: skip

    assert declared.status_code == chunked.status_code == 413
    assert declared.json()["error"]["type"] == "too_large"
    assert "transfer-encoding" not in declared.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert _submit(api, key, "x" * (MAX_BODY // 2)).status_code == 202


@pytest.mark.timeout(60)
def test_api_refuses_to_start_with_a_body_cap_an_accepted_input_would_not_fit_in(
    env: dict[str, str],
) -> None:
    small = {**env, "HIVE_MAX_INPUT_BYTES": "1000000", "HIVE_API_MAX_BODY_BYTES": "1000000"}

    refused = run_hive("api", "--port", str(free_port()), env=small, timeout_s=30)

    assert refused.returncode == 1, describe(refused)
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: HIVE_API_MAX_BODY_BYTES: 1000000 is less than HIVE_MAX_INPUT_BYTES (1000000) "
        "plus 4096 for the rest of a submit's body, so an input the farm accepts would be "
        "refused with 413; set it to at least 1004096, or lower HIVE_MAX_INPUT_BYTES"
    ], describe(refused)


@pytest.mark.timeout(120)
def test_a_submit_of_the_largest_input_and_longest_fields_fits_the_smallest_body_cap_allowed(
    env: dict[str, str], tmp_path: Path
) -> None:
    bounds = {**env, "HIVE_MAX_INPUT_BYTES": "1000", "HIVE_API_MAX_BODY_BYTES": "5096"}
    server = Api(bounds, tmp_path / "api.log")
    try:
        key, _ = make_key("acme", "producer")
        text = "x" * (1000 - len('{"text":""}'))  # 1000 bytes as compact JSON: the most taken
        sent = {
            "pipeline": "echo-one",
            "input": {"text": text},
            "tenant": "acme",
            "priority": "critical",
            "idempotency_key": "\U0001f41d" * 200,  # 4 bytes each in UTF-8 JSON
            "deadline_s": 123456789.123456789,
            "budget_usd": 999999999.99999,
        }
        answer = server.call("POST", "/v1/runs", key=key, json=sent)
        too_big = server.call(
            "POST", "/v1/runs", key=key, json={**sent, "input": {"text": text + "x"}}
        )
    finally:
        server.stop()

    assert answer.status_code == 202, answer.text
    assert too_big.status_code == 422, too_big.text  # the input's bound, not the body's
    assert "HIVE_MAX_INPUT_BYTES" in too_big.text


def test_pages_of_runs_stay_stable_while_runs_are_submitted(api: Api, env: dict[str, str]) -> None:
    key, _ = make_key("acme", "producer")
    first = [_submit(api, key, f"old {i}").json()["id"] for i in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/v1/runs", key=key, params=params).json()
        seen += [r["id"] for r in page["runs"]]
        assert all(r["steps"] is None for r in page["runs"])
        _submit(api, key, "new")  # lands before the first page, never in a later one
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(first))
    created = {r["id"]: r["created_at"] for r in api.call("GET", "/v1/runs", key=key,
               params={"limit": 100}).json()["runs"]}  # fmt: skip
    window = {"created_after": created[first[1]], "created_before": created[first[4]]}
    within = api.call("GET", "/v1/runs", key=key, params=window).json()["runs"]
    assert [r["id"] for r in within] == [first[3], first[2], first[1]]
    naive = api.call("GET", "/v1/runs", key=key, params={"created_after": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["problems"][0]["path"] == "created_after"


def test_time_bounds_take_any_utc_offset_and_refuse_what_is_out_of_range(
    api: Api, env: dict[str, str]
) -> None:
    # Found by schemathesis: PostgreSQL refuses an offset past 15:59, Python does not (500).
    key, _ = make_key("acme", "admin")
    run = _submit(api, key).json()
    created = datetime.fromisoformat(run["created_at"])
    far_east = created.astimezone(timezone(timedelta(hours=23, minutes=8))).isoformat()
    far_west = (created + timedelta(seconds=1)).astimezone(timezone(-timedelta(hours=22)))

    window = {"created_after": far_east, "created_before": far_west.isoformat()}
    within = api.call("GET", "/v1/runs", key=key, params=window)
    letters = api.call("GET", "/v1/dead-letters", key=key, params={"since": far_east})
    beyond = api.call("GET", "/v1/runs", key=key,
                      params={"created_before": "9999-12-31T23:00:00-22:10"})  # fmt: skip
    before = api.call("GET", "/v1/dead-letters", key=key,
                      params={"since": "0001-01-01T00:00:00+15:00"})  # fmt: skip

    assert within.status_code == 200, within.text
    assert [r["id"] for r in within.json()["runs"]] == [run["id"]]
    assert (letters.status_code, letters.json()) == (200, [])
    assert beyond.status_code == before.status_code == 422
    (problem,) = beyond.json()["error"]["problems"]
    assert (problem["in"], problem["path"]) == ("query", "created_before")
    assert problem["message"].startswith("created_before is out of range")
    assert before.json()["error"]["problems"][0]["path"] == "since"


def test_a_forged_cursor_is_422_or_a_page_never_a_500(api: Api, env: dict[str, str]) -> None:
    """A cursor is the client's to send back: one made up with a UTC offset PostgreSQL
    refuses (past 15:59) was passed to the query as it was (500)."""
    key, _ = make_key("acme", "viewer")
    producer, _ = make_key("acme", "producer")
    run = _submit(api, producer).json()

    def cursor(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    later = datetime.fromisoformat(run["created_at"]) + timedelta(seconds=1)
    far_east = later.astimezone(timezone(timedelta(hours=23))).isoformat()
    page = api.call(
        "GET", "/v1/runs", key=key, params={"cursor": cursor(f"{far_east}|{run['id']}")}
    )
    assert page.status_code == 200, page.text
    assert [r["id"] for r in page.json()["runs"]] == [run["id"]]
    past_9999 = cursor(f"9999-12-31T23:00:00-22:10|{run['id']}")
    beyond = api.call("GET", "/v1/runs", key=key, params={"cursor": past_9999})
    assert beyond.status_code == 422, beyond.text
    assert [(p["in"], p["path"]) for p in beyond.json()["error"]["problems"]] == [
        ("query", "cursor")
    ]


def test_every_change_is_audited_and_no_key_is_ever_written(api: Api, env: dict[str, str]) -> None:
    producer, producer_id = make_key("acme", "producer")
    viewer, viewer_id = make_key("acme", "viewer")
    run = _submit(api, producer).json()
    once = _submit(api, producer, idempotency_key="once").json()
    again = _submit(api, producer, idempotency_key="once")
    assert (again.status_code, again.json()["id"]) == (200, once["id"])
    api.call("POST", f"/v1/runs/{run['id']}/cancel", key=producer)
    _submit(api, viewer)
    _submit(api, producer, text=5)  # type: ignore[arg-type]
    assert run_hive("keys", "revoke", viewer_id, env=env).returncode == 0

    listed = run_hive("audit", "list", "--tenant", "acme", "--since", "1h", "--json", env=env)
    records = [
        (r["key_id"], r["tenant"], r["role"], r["action"], r["target"], r["outcome"], r["client"])
        for r in reversed(json.loads(listed.stdout))
    ]
    assert records == [
        (None, "acme", "operator", "key.create", f"key:{producer_id}", "ok", None),
        (None, "acme", "operator", "key.create", f"key:{viewer_id}", "ok", None),
        (producer_id, "acme", "producer", "run.submit", f"run:{run['id']}", "ok", "127.0.0.1"),
        # Written by the run's own insert; the repeat by the route.
        (producer_id, "acme", "producer", "run.submit", f"run:{once['id']}", "ok", "127.0.0.1"),
        (producer_id, "acme", "producer", "run.submit", f"run:{once['id']}", "existing",
         "127.0.0.1"),
        (producer_id, "acme", "producer", "run.cancel", f"run:{run['id']}", "ok", "127.0.0.1"),
        (viewer_id, "acme", "viewer", "run.submit", "pipeline:echo-one", "denied", "127.0.0.1"),
        (producer_id, "acme", "producer", "run.submit", "pipeline:echo-one", "invalid",
         "127.0.0.1"),
        (None, "acme", "operator", "key.revoke", f"key:{viewer_id}", "ok", None),
    ]  # fmt: skip
    assert run_hive("audit", "list", "--tenant", "other", "--json", env=env).stdout.strip() == "[]"
    secrets = [producer, viewer, producer.split("_", 2)[2], viewer.split("_", 2)[2]]
    written = "\n".join(database_texts()) + api.log() + listed.stdout
    written += run_hive("keys", "list", "--json", env=env).stdout
    assert not [s for s in secrets if s in written]


def test_an_operators_submit_for_a_tenant_no_run_could_have_is_422_and_audited(
    api: Api, env: dict[str, str]
) -> None:
    """The refused submit's audit record was filed under the tenant the body named, whose
    NUL PostgreSQL cannot store: the record's insert failed and the answer was a 500."""
    operator, operator_id = make_key(None)
    body = {"pipeline": "echo-one", "input": {"text": "x"}, "tenant": "a\u0000b"}

    refused = api.call("POST", "/v1/runs", key=operator, json=body)

    assert refused.status_code == 422, refused.text
    assert "tenant contains a NUL character" in refused.json()["error"]["message"]
    records = db.rows(
        "SELECT key_id, tenant, action, outcome FROM audit WHERE action = 'run.submit'"
    )
    assert [tuple(r) for r in records] == [(operator_id, None, "run.submit", "invalid")]
    assert db.scalar("SELECT count(*) FROM runs") == 0


def test_the_first_steps_of_runs_submitted_at_once_are_confirmed_published_after_the_answers(
    api: Api, env: dict[str, str]
) -> None:
    """hive api confirms its publishes in batches, off the request's path (no worker runs:
    the steps stay in their queue, marked sent)."""
    producer, _ = make_key("acme", "producer")
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda i: _submit(api, producer, f"t{i}").json()["id"], range(20)))
    query = (
        "SELECT count(*) FILTER (WHERE enqueued_at IS NOT NULL) AS sent,"
        " count(*) FILTER (WHERE publish_by IS NOT NULL) AS unconfirmed"
        " FROM step_runs WHERE run_id = ANY(CAST(:ids AS uuid[]))"
    )
    deadline = time.monotonic() + 10  # far inside the 30 s publish grace
    while (marks := db.rows(query, ids=ids)[0]).unconfirmed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (marks.sent, marks.unconfirmed) == (20, 0)


def test_health_readiness_headers_and_the_openapi_document(api: Api, env: dict[str, str]) -> None:
    health = api.call("GET", "/healthz")
    ready = api.call("GET", "/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "unavailable": None})
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    for answer in (health, api.call("GET", "/v1/runs"), api.call("GET", "/nowhere")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "server" not in answer.headers
    nowhere = api.call("GET", "/nowhere", headers={"Origin": "https://elsewhere.example"})
    assert nowhere.status_code == 404
    assert nowhere.json() == {"error": {"type": "not_found", "message": "Not Found"}}
    assert "access-control-allow-origin" not in nowhere.headers  # CORS is off

    assert api.log().count("Application startup complete") == 2  # both workers log
    served = api.call("GET", "/openapi.json").json()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served == committed, "docs/openapi.json is stale: run `python scripts/openapi.py`"


def test_a_broken_pipeline_file_takes_down_its_own_pipeline_alone(
    hive_env: dict[str, str], tmp_path: Path, clean_state: None
) -> None:
    """A pipeline file the farm cannot load stopped every pipeline (503 for every submit and
    listing). Now the others are served; the broken one is the farm's to fix: 503 for it,
    without the server's file paths or its agents, and its problems in the log."""
    directory = tmp_path / "pipelines"
    directory.mkdir()
    shutil.copy(Path(hive_env["HIVE_PIPELINES_DIR"]) / "echo-one.yaml", directory)
    (directory / "broken.yaml").write_text("name: broken\nsteps:\n  - id: x\n    agent: nope\n")
    env = {**os.environ, **hive_env, "HIVE_PIPELINES_DIR": str(directory)}
    server = Api(env, tmp_path / "api.log")
    try:
        key, _ = make_key("acme", "producer")
        served = [
            _submit(server, key),
            server.call("GET", "/v1/pipelines", key=key),
            server.call("GET", "/v1/pipelines/echo-one", key=key),
        ]
        broken = [
            server.call("POST", "/v1/runs", key=key, json={"pipeline": "broken", "input": {}}),
            server.call("GET", "/v1/pipelines/broken", key=key),
        ]
        log = server.log()
    finally:
        server.stop()

    assert [answer.status_code for answer in served] == [202, 200, 200], served[0].text
    assert [p["name"] for p in served[1].json()] == ["echo-one"]
    for answer in broken:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["type"] == "unavailable"
        assert "cannot load that pipeline's file" in answer.text
        assert str(tmp_path) not in answer.text and "nope" not in answer.text
        assert answer.headers["retry-after"] == "5"
    assert f"{directory / 'broken.yaml'}: step 'x': agent: unknown agent 'nope'" in log
    assert db.scalar("SELECT count(*) FROM runs") == 1


def test_keys_commands_refuse_what_makes_no_key(env: dict[str, str]) -> None:
    both = run_hive("keys", "create", "--all-tenants", "--tenant", "acme", env=env)
    unknown = run_hive("keys", "revoke", "0123456789abcdef", env=env)
    made = run_hive("keys", "create", "--tenant", "acme", "--role", "viewer", "--json", env=env)

    assert both.returncode == 2, describe(both)
    assert both.stderr.startswith("error: --all-tenants makes an operator key")
    assert (unknown.returncode, unknown.stderr) == (
        1, "error: no API key with id '0123456789abcdef'\n"
    ), describe(unknown)  # fmt: skip
    shown = json.loads(made.stdout)
    assert shown["key"].startswith(f"hive_{shown['id']}_")
    assert db.scalar("SELECT count(*) FROM api_keys") == 1


def test_a_forwarded_client_address_is_believed_from_a_listed_proxy_alone(
    api: Api, hive_env: dict[str, str], tmp_path: Path, clean_state: None
) -> None:
    """Behind a load balancer the audit trail (and the failed-authentication limit) needs
    the client's address, which only the proxy knows: X-Forwarded-For, believed from the
    addresses of HIVE_API_TRUSTED_PROXIES alone; from anyone else a client could name
    itself anything, so the header is ignored."""
    key, _ = make_key("acme", "producer")
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    env = {**os.environ, **hive_env, "HIVE_API_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"}
    behind = Api(env, tmp_path / "behind.log")
    try:
        trusted = behind.call("POST", "/v1/runs", key=key, headers=forwarded,
                              json={"pipeline": "echo-one", "input": {"text": "a"}})  # fmt: skip
    finally:
        behind.stop()
    ignored = api.call("POST", "/v1/runs", key=key, headers=forwarded,
                       json={"pipeline": "echo-one", "input": {"text": "b"}})  # fmt: skip
    assert trusted.status_code == ignored.status_code == 202

    clients = {
        r.target: r.client
        for r in db.rows("SELECT target, client FROM audit WHERE action = 'run.submit'")
    }
    assert clients == {
        f"run:{trusted.json()['id']}": "203.0.113.7",
        f"run:{ignored.json()['id']}": "127.0.0.1",
    }


def test_a_trusted_proxy_that_is_no_address_stops_the_api_at_start(
    hive_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **hive_env, "HIVE_API_TRUSTED_PROXIES": "10.0.0.0/8,*"}
    started = run_hive("api", "--port", "1", env=env)
    assert started.returncode != 0
    assert "HIVE_API_TRUSTED_PROXIES" in started.stderr and "'*'" in started.stderr
    assert "Traceback" not in started.stderr


def test_the_test_api_starts_again_on_another_port_when_its_port_was_taken_meanwhile(
    hive_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # free_port()'s port can be taken before `hive api` binds it (another process of the
    # machine): the api exited with "Address already in use" and the test failed (CI, -n 4).
    import socket

    import tests.support.api
    from tests.support.redis_server import free_port

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, not listening: no answer to /healthz
        taken = int(holder.getsockname()[1])
        ports = iter([taken])
        monkeypatch.setattr(
            tests.support.api, "free_port", lambda: next(ports, None) or free_port()
        )
        api = Api({**os.environ, **hive_env}, tmp_path / "api.log")
        try:
            assert api.port != taken
            assert api.call("GET", "/healthz").status_code == 200
        finally:
            api.stop()
    assert "address already in use" in (tmp_path / "api.log").read_text().lower()
