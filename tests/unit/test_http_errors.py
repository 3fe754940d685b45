"""Each of Hive's errors the HTTP API answers with comes back, in a client of the API, as
the same class with the same arguments and message a direct client raises: the API's own
error handlers write the answers here (in process), and hive.client.http_errors reads them."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hive.api.errors import Unprocessable, input_problems, install
from hive.client.http_errors import error_from
from hive.errors import (
    ApiError,
    ApprovalError,
    ApprovalNotFound,
    AuthenticationFailed,
    HiveError,
    InputError,
    InvalidArgument,
    PermissionDenied,
    ReplayError,
    RunNotFound,
    ServiceInstanceNotFound,
    ServiceUnavailable,
    TooManyRequests,
    TooManyRunsInFlight,
    TooManyServiceInstances,
    UnknownPipeline,
)

RUN = str(uuid.uuid4())

ROUND_TRIPS: list[HiveError] = [
    AuthenticationFailed(),
    PermissionDenied("viewer", "submit runs"),
    PermissionDenied("producer", "decide approvals"),
    RunNotFound(RUN),
    RunNotFound("not a uuid at all"),
    UnknownPipeline("nope", ["doc-triage", "echo-one"]),
    UnknownPipeline("it's", []),
    ApprovalNotFound(RUN, "review"),
    ServiceInstanceNotFound("llm-1"),
    ApprovalError(RUN, "review", "approved already by key:ab12 at 2026-12-07T08:00:00+00:00"),
    ReplayError(RUN, "the run is succeeded, not failed"),
    TooManyRunsInFlight("acme", 5),
    TooManyRunsInFlight(None, 3),
    TooManyServiceInstances("acme", 1000),
    TooManyServiceInstances('it\'s "x"', 2),
    TooManyServiceInstances(None, 7),
    InvalidArgument(["limit must be from 1 to 10000", "status must be a run status"]),
]


def _app(errors: list[Exception]) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/raise/{index}")
    def fail(index: int) -> None:
        raise errors[index]

    return app


def _answered(*errors: Exception) -> list[httpx.Response]:
    with TestClient(_app(list(errors)), base_url="http://127.0.0.1:8000") as client:
        return [client.get(f"/raise/{i}") for i in range(len(errors))]


@pytest.mark.parametrize("error", ROUND_TRIPS, ids=lambda e: f"{type(e).__name__}")
def test_an_api_error_comes_back_as_the_error_a_direct_client_raises(error: HiveError) -> None:
    (response,) = _answered(error)

    back = error_from(response)

    assert type(back) is type(error), response.text
    assert back.args == error.args
    assert str(back) == str(error)


def test_a_rate_limit_keeps_its_retry_after_and_its_figures() -> None:
    (response,) = _answered(TooManyRequests(2.2, "slow down", limit=10, reset_s=4))

    back = error_from(response)

    assert type(back) is TooManyRequests
    assert (str(back), back.retry_after_s, back.limit, back.reset_s) == ("slow down", 3, 10, 4)


def test_an_unreachable_server_behind_the_api_is_service_unavailable_naming_the_api() -> None:
    (response,) = _answered(ServiceUnavailable("HIVE_DATABASE_URL", "db.internal:5432 refused"))

    back = error_from(response)

    assert isinstance(back, ServiceUnavailable)
    assert back.variable == "http://127.0.0.1:8000"
    assert back.retry_after_s == 5
    assert "internal" not in str(back)


def test_a_submits_unfit_input_is_an_input_error_of_its_pipeline_naming_each_path() -> None:
    unfit = InputError("echo-one", ["input.text: 5 is not of type 'string'", "input: too deep"])
    unknown = UnknownPipeline("nope", ["echo-one"])
    # The submit route's own answers: each problem at its path in the body.
    responses = _answered(
        Unprocessable(input_problems(unfit)), Unprocessable([("body", "pipeline", str(unknown))])
    )

    back = error_from(responses[0], pipeline="echo-one")
    assert type(back) is InputError
    assert back.args == unfit.args and str(back) == str(unfit)
    other = error_from(responses[1], pipeline="nope")
    assert type(other) is UnknownPipeline and other.args == unknown.args


def test_a_request_field_that_does_not_fit_is_an_invalid_argument_naming_it() -> None:
    (response,) = _answered(Unprocessable([("body", "priority", "Input should be 'low'")]))

    back = error_from(response, pipeline="echo-one")

    assert type(back) is InvalidArgument and isinstance(back, ValueError)
    assert back.problems == ["priority: Input should be 'low'"]


def test_an_answer_that_is_not_the_apis_is_an_api_error_or_a_proxys_unavailable() -> None:
    request = httpx.Request("GET", "http://user:pw@127.0.0.1:8000/v1/runs")
    lost = httpx.Response(404, text="<html>no such page</html>", request=request)
    crashed = httpx.Response(
        500, json={"error": {"type": "internal", "message": "internal error"}}, request=request
    )
    gateway = httpx.Response(502, text="<html>bad gateway</html>", request=request)

    assert type(error_from(lost)) is ApiError
    assert error_from(lost).args[0] == 404
    assert type(error_from(crashed)) is ApiError and "internal error" in str(error_from(crashed))
    unavailable = error_from(gateway)
    assert isinstance(unavailable, ServiceUnavailable)
    assert "pw" not in str(unavailable) and "user" not in str(unavailable)
