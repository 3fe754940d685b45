"""`GET /metrics` of `hive api`: requests counted and timed by route template, method and
status, summed over the server's worker processes, with bounded labels whatever a client
sends. A real `hive api` with two workers, real PostgreSQL and Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import Api, make_key
from tests.support.commands import describe, run_hive
from tests.support.redis_server import free_port


@pytest.fixture
def api(
    hive_env: dict[str, str], clean_state: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    # A fresh server: its counts start at zero.
    server = Api(
        {**os.environ, **hive_env}, tmp_path_factory.mktemp("api") / "api.log", "--workers", "2"
    )
    yield server
    server.stop()


def _samples(api: Api, name: str) -> dict[tuple[str, str, str], float]:
    answer = api.call("GET", "/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name:
                labels = sample.labels
                found[(labels["route"], labels["method"], labels["status"])] = sample.value
    return found


def test_requests_are_counted_by_route_template_and_status_over_every_worker(api: Api) -> None:
    key, _ = make_key("acme", "viewer")
    calls = 40
    for i in range(calls):
        # A new connection each time: the two worker processes both take some.
        with httpx.Client(base_url=api.base_url) as fresh:
            fresh.get(f"/v1/runs/{i:08d}-0000-0000-0000-000000000000",
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    api.call("GET", "/v1/runs", key=key)
    api.call("GET", "/v1/runs")
    for path in ("/nowhere/1", "/nowhere/2", "/v1/runs/x/y/z"):
        assert api.call("GET", path).status_code == 404
    # A method outside the labels' set that HTTP parsers know (httptools answers one it does
    # not know, such as BREW, with 400 before any application sees it).
    assert api.call("PROPFIND", "/v1/runs", key=key).status_code == 405

    counts = _samples(api, "hive_api_requests_total")
    assert counts[("/v1/runs/{run_id}", "GET", "404")] == calls
    assert counts[("/v1/runs", "GET", "200")] == 1
    assert counts[("/v1/runs", "GET", "401")] == 1
    assert counts[("other", "GET", "404")] == 3
    assert counts[("/v1/runs", "other", "405")] == 1
    # No raw path or id in any label.
    assert not [labels for labels in counts if "0000" in labels[0] or "nowhere" in labels[0]]

    durations = _samples(api, "hive_api_request_duration_seconds_count")
    assert durations[("/v1/runs/{run_id}", "GET", "404")] == calls


def test_the_api_health_check_is_its_readiness(api: Api, hive_env: dict[str, str]) -> None:
    env = {**os.environ, **hive_env}
    ready = run_hive("healthcheck", "api", "--port", str(api.port), env=env)
    assert ready.returncode == 0, describe(ready)
    assert "is ready" in ready.stdout
    nobody = run_hive("healthcheck", "api", "--port", str(free_port()), "--timeout", "2", env=env)
    assert nobody.returncode == 1, describe(nobody)
    assert "does not answer" in nobody.stderr
