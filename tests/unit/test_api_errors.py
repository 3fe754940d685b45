"""The API's error answers say what a client may know and nothing more."""

from __future__ import annotations

import json

import httpx
import pytest

from hive.api.errors import hive_error_response
from hive.api.models import public_error, public_run
from hive.errors import (
    AuthenticationFailed,
    DispatchError,
    InputError,
    PermissionDenied,
    RunNotFound,
    ServiceUnavailable,
    SettingsError,
    StatementCanceled,
)
from hive.settings import ApiSettings


def _answer(exc: Exception) -> tuple[int, dict[str, object]]:
    response = hive_error_response(exc)
    return response.status_code, json.loads(bytes(response.body))["error"]


def test_a_server_that_cannot_be_reached_is_503_without_its_address() -> None:
    status, error = _answer(
        ServiceUnavailable("HIVE_DATABASE_URL", "could not connect to db.internal:5432")
    )

    assert status == 503
    assert "internal" not in json.dumps(error) and "5432" not in json.dumps(error)
    assert _answer(SettingsError("HIVE_BROKER_URL", "redis://secret@host"))[0] == 503


def test_a_statement_the_database_gave_up_on_is_503_without_its_words() -> None:
    status, error = _answer(
        StatementCanceled("lock_timeout", "canceling statement due to lock timeout on step_runs")
    )

    assert status == 503
    assert error["type"] == "unavailable"
    assert "lock or statement timeout" in str(error["message"])
    assert "cannot be reached" not in str(error["message"])  # it answered
    assert "step_runs" not in json.dumps(error)


def test_a_dispatch_error_is_told_without_the_brokers_words() -> None:
    detail = "ConnectionError: Error 111 connecting to redis.internal:6379. Connection refused."
    status, error = _answer(DispatchError("r1", ["a", "b"], detail))

    assert status == 409
    assert error == {
        "type": "conflict",
        "message": "run r1: could not dispatch steps 'a', 'b': the farm could not send them "
        "to its workers; they failed and are in the dead letters",
    }


def test_run_views_show_no_worker_and_farm_failures_in_words_of_their_kind() -> None:
    """Failures the farm records of itself quote its machines: a lost worker's hostname, a
    lease's worker, the broker's host and port."""
    recorded = {
        "worker_lost": "worker hive@gpu-7.internal stopped heartbeating and was marked lost",
        "lease_expired": "no word from worker hive@gpu-7.internal before the lease ran out",
        "dispatch_error": "ConnectionError: Error 111 connecting to redis.internal:6379.",
    }
    steps = [
        {"step_id": kind, "worker": "hive@gpu-7.internal", "error": {"type": kind,
         "message": message, "traceback": "File /srv/hive/x.py"}}
        for kind, message in recorded.items()
    ]  # fmt: skip
    agents = {"type": "PermanentError", "message": "doomed on purpose", "traceback": None}
    steps.append({"step_id": "own", "worker": "hive@gpu-7.internal", "error": agents})
    run = {"error": {"step_id": "worker_lost", **steps[0]["error"]}, "steps": steps}

    shown = public_run(run)

    assert "internal" not in json.dumps(shown) and "traceback" not in json.dumps(shown)
    assert {s["worker"] for s in shown["steps"]} == {None}
    assert [s["error"]["message"] for s in shown["steps"]] == [
        "the worker running the step was lost",
        "the worker running the step stopped answering before its lease ran out",
        "the farm could not send the step to its workers",
        "doomed on purpose",  # an agent's own words are the step's
    ]
    assert shown["error"]["step_id"] == "worker_lost"
    assert public_error(None) is None


def test_each_error_has_its_status() -> None:
    assert _answer(AuthenticationFailed())[0] == 401
    assert _answer(PermissionDenied("viewer", "submit runs"))[0] == 403
    assert _answer(RunNotFound("x"))[0] == 404
    status, error = _answer(InputError("p", ["input.items.2.name: 5 is not of type 'string'"]))
    assert status == 422
    assert error["problems"] == [
        {"in": "body", "path": "input.items.2.name", "message": "5 is not of type 'string'"}
    ]


@pytest.mark.parametrize("origins", ["*", "app.example.com", "https://app.example.com/path"])
def test_cors_origins_must_be_origins(origins: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        ApiSettings(cors_origins=origins)


def test_a_short_pepper_is_refused_and_an_empty_one_is_none() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        ApiSettings(key_pepper="short")
    assert ApiSettings(key_pepper="").key_pepper is None


def test_a_bug_is_a_500_without_its_traceback_and_with_the_security_headers() -> None:
    import asyncio

    from hive.api import create_app

    app = create_app()

    def boom() -> None:
        raise RuntimeError("secret detail at db.internal:5432")

    app.add_api_route("/boom", boom)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/boom")

    answer = asyncio.run(call())

    assert answer.status_code == 500
    assert answer.json() == {"error": {"type": "internal", "message": "internal error"}}
    assert answer.headers["x-content-type-options"] == "nosniff"


def _preflight(origins: str, origin: str) -> httpx.Response:
    import asyncio

    from hive.api import create_app
    from hive.settings import get_settings

    settings = get_settings().model_copy(update={"api": ApiSettings(cors_origins=origins)})
    app = create_app(settings)
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.options("/v1/runs", headers=headers)

    return asyncio.run(call())


def test_cors_answers_the_configured_origins_alone_and_never_with_credentials() -> None:
    allowed = _preflight("https://app.example.com", "https://app.example.com")
    other = _preflight("https://app.example.com", "https://evil.example.com")
    off = _preflight("", "https://app.example.com")

    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in off.headers


def test_a_browser_reads_the_refusals_and_when_to_come_back() -> None:
    """With CORS on, a 413 (answered outside the CORS middleware) had no
    Access-Control-Allow-Origin, so a browser saw a network error; and Retry-After and
    RateLimit-* were not exposed, so a page could not tell when to try again."""
    import asyncio

    from hive.api import create_app
    from hive.settings import get_settings

    origin = "https://app.example.com"
    api = ApiSettings(cors_origins=origin, max_body_bytes=10)
    app = create_app(get_settings().model_copy(update={"api": api}))

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            headers = {"Origin": origin}
            large = await client.post("/v1/runs", content=b"x" * 11, headers=headers)
            return large, await client.get("/v1/runs", headers=headers)

    large, unauthenticated = asyncio.run(call())

    assert (large.status_code, unauthenticated.status_code) == (413, 401)
    for answer in (large, unauthenticated):
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["x-content-type-options"] == "nosniff"
        exposed = answer.headers["access-control-expose-headers"].lower().split(",")
        assert {"retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= {
            name.strip() for name in exposed
        }
