"""The Grafana dashboard: provisioned from config/grafana, every panel's query valid PromQL
as a real Prometheus parses and evaluates it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import Prometheus, binary

GRAFANA = Path(__file__).resolve().parents[2] / "config" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "hive.json").read_text())
TARGETS = [
    (panel["title"], target["expr"])
    for panel in DASHBOARD["panels"]
    for target in panel.get("targets", [])
]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary("prometheus")
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), {})
    yield server
    server.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("title", "expr"), TARGETS, ids=[t for t, _ in TARGETS])
def test_every_panel_query_is_valid_promql(prometheus: Prometheus, title: str, expr: str) -> None:
    prometheus.query(expr)  # raises with Prometheus's parse error


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = sources["datasources"][0]["uid"]
    assert sources["datasources"][0]["type"] == "prometheus"
    assert TARGETS
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]


def test_the_dashboard_is_provisioned_from_its_folder() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "hive.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    assert DASHBOARD["uid"] == "hive-farm"
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))


def test_the_dashboard_shows_the_golden_signals() -> None:
    exprs = " ".join(expr for _, expr in TARGETS)
    for name in (
        "hive_runs_total",  # traffic and errors
        "hive_run_duration_seconds_bucket",  # latency
        "hive_step_wait_seconds_bucket",
        "hive_queue_depth",  # saturation
        "hive_queue_oldest_seconds",
        "hive_steps_running",
        "hive_dead_letters",
        "hive_step_retries_total",
        'up{job="hive-workers"}',
        "hive_maintenance_last_success_timestamp_seconds",
        "hive_approvals_pending",  # steps waiting on a person
        "hive_approvals_oldest_pending_seconds",
        'hive_api_requests_total{job="hive-api"}',  # the HTTP API's traffic and errors
        'hive_api_requests_total{job="hive-api",status="429"}',  # its admission control
        "hive_api_request_duration_seconds_bucket",  # and latency
    ):
        assert name in exprs, name
