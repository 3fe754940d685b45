"""A real Prometheus scrapes a real `hive worker` and `hive exporter` while pipelines run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.api import Api
from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess, wait_until
from tests.support.producer import submit
from tests.support.prometheus import Prometheus, binary
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
BUNDLED = ROOT / "config" / "prometheus" / "prometheus.yml"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def ports() -> dict[str, int]:
    binary("prometheus")
    return {"worker": free_port(), "exporter": free_port(), "flower": free_port()}


@pytest.fixture
def prometheus(tmp_path: Path, ports: dict[str, int]) -> Iterator[Prometheus]:
    server = Prometheus(
        tmp_path / "prometheus",
        {
            "hive-worker": [f"127.0.0.1:{ports['worker']}"],
            "hive-exporter": [f"127.0.0.1:{ports['exporter']}"],
        },
        rule_files=[ALERTS],
    )
    yield server
    server.stop()


@pytest.fixture
def exporter(env: dict[str, str], tmp_path: Path, ports: dict[str, int]) -> Iterator[HiveProcess]:
    proc = HiveProcess(
        ["exporter", "--port", str(ports["exporter"])],
        {**env, "HIVE_METRICS_ADDRESS": "127.0.0.1"},
        tmp_path / "exporter.log",
    )
    try:
        proc.wait_for_log("serving /metrics", timeout_s=60)
        yield proc
    finally:
        proc.stop()


def _eventually(prom: Prometheus, expr: str, check: Callable[[float], bool], what: str) -> float:
    seen: list[float | None] = [None]

    def holds() -> bool:
        seen[0] = prom.value(expr)
        return seen[0] is not None and check(seen[0])

    try:
        wait_until(holds, 60, what)
    except Exception:
        raise AssertionError(f"{what}: {expr} = {seen[0]}") from None
    assert seen[0] is not None
    return seen[0]


def test_prometheus_sees_the_farm_figures_and_the_worker_metrics_move(
    env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    prometheus: Prometheus,
    exporter: HiveProcess,
    ports: dict[str, int],
) -> None:
    up = 'up{job="hive-exporter"}'
    _eventually(prometheus, up, lambda v: v == 1, "the exporter is scraped")
    _eventually(
        prometheus, "min(hive_exporter_source_up)", lambda v: v == 1, "both sources readable"
    )

    # No worker yet: the runs wait in their queue.
    submit(env, "echo-one", [{"text": f"t{i}"} for i in range(3)])
    _eventually(
        prometheus,
        'hive_runs_in_flight{pipeline="echo-one",status="queued"}',
        lambda v: v == 3,
        "three runs in flight",
    )
    _eventually(
        prometheus,
        'sum(hive_queue_depth{queue="hive.default"})',
        lambda v: v == 3,
        "three messages in the default queue",
    )
    _eventually(
        prometheus,
        'hive_queue_depth{queue="hive.default",priority="normal"}',
        lambda v: v == 3,
        "at normal priority",
    )
    _eventually(
        prometheus,
        'hive_queue_oldest_seconds{queue="hive.default"}',
        lambda v: v > 0,
        "the oldest waiting step ages",
    )

    maintenance = run_hive("maintenance", "recover", env=env)
    assert maintenance.returncode == 0, describe(maintenance)
    _eventually(
        prometheus,
        'hive_maintenance_last_success_timestamp_seconds{task="recover"}',
        lambda v: abs(v - time.time()) < 120,
        "recover's last success",
    )

    _eventually(
        prometheus,
        'hive_maintenance_interval_seconds{task="recover"}',
        lambda v: v == 30,
        "recover's interval (HIVE_RECOVERY_INTERVAL_S)",
    )

    registered = run_hive("services", "register", "search", "--url", "http://127.0.0.1:1/", env=env)
    assert registered.returncode == 0, describe(registered)
    _eventually(
        prometheus,
        'sum(hive_service_instances{service="search"})',
        lambda v: v == 1,
        "the registered instance",
    )
    _eventually(prometheus, 'hive_workers{state="online"}', lambda v: v == 0, "no worker yet")

    # A prefork worker with two pool processes: /metrics sums both.
    start_worker(
        "--concurrency",
        "2",
        "--metrics-port",
        str(ports["worker"]),
        extra_env={"HIVE_METRICS_ADDRESS": "127.0.0.1"},
    )
    submit(env, "fault-dlq", [{"times": 5}])  # retried once, then a dead letter

    _eventually(prometheus, 'hive_workers{state="online"}', lambda v: v == 1, "one worker")
    steps = 'sum(hive_steps_total{agent="echo",status="succeeded"})'
    _eventually(prometheus, steps, lambda v: v == 4, "4 echo steps (3 runs + fault-dlq's first)")
    _eventually(
        prometheus,
        'sum(hive_step_retries_total{agent="fail",reason="RetryableError"})',
        lambda v: v == 1,
        "one retry",
    )
    _eventually(
        prometheus,
        'sum(hive_steps_total{agent="fail",status="failed"})',
        lambda v: v == 1,
        "the flaky step failed for good",
    )
    _eventually(
        prometheus,
        'sum(hive_runs_total{pipeline="echo-one",status="succeeded"})',
        lambda v: v == 3,
        "three runs succeeded",
    )
    _eventually(
        prometheus,
        'sum(hive_runs_total{pipeline="fault-dlq",status="failed"})',
        lambda v: v == 1,
        "one run failed",
    )
    _eventually(
        prometheus,
        'sum(hive_run_duration_seconds_count{pipeline="echo-one"})',
        lambda v: v == 3,
        "three run durations",
    )
    _eventually(
        prometheus,
        'sum(hive_step_duration_seconds_count{agent="fail"})',
        lambda v: v == 2,
        "two attempts of the flaky step timed",
    )
    # Three waited before the worker started, for at least as long as the exporter saw.
    _eventually(
        prometheus,
        'sum(hive_step_wait_seconds_count{queue="hive.default"})',
        lambda v: v >= 6,
        "every claimed message's wait observed",
    )
    _eventually(
        prometheus,
        'histogram_quantile(1, sum by (le) (hive_step_wait_seconds_bucket{queue="hive.default"}))',
        lambda v: v > 0.5,
        "the queued runs' wait observed",
    )
    _eventually(prometheus, 'hive_dead_letters{pipeline="fault-dlq"}', lambda v: v == 1, "dlq")
    _eventually(
        prometheus,
        "sum(hive_runs_in_flight) or vector(0)",
        lambda v: v == 0,
        "nothing left in flight",
    )
    _eventually(
        prometheus,
        'sum(hive_queue_depth{queue="hive.default"})',
        lambda v: v == 0,
        "the default queue drained",
    )
    _eventually(prometheus, "max(hive_steps_running) or vector(0)", lambda v: v == 0, "idle")

    # The shipped alert rules evaluate against these series without error.
    groups = prometheus.api("rules")["groups"]
    assert groups, "no alert rules loaded"
    broken = [
        (rule["name"], rule.get("lastError"))
        for group in groups
        for rule in group["rules"]
        if rule.get("health") == "err"
    ]
    assert broken == []


def _bundled_config(ports: dict[str, int], alertmanager_port: int) -> dict[str, object]:
    """config/prometheus/prometheus.yml with only where to find each target changed: the
    compose services become this host's ports, scraped every second."""
    config = yaml.safe_load(BUNDLED.read_text())
    local = {**ports, "alertmanager": alertmanager_port}
    for job in config["scrape_configs"]:
        hosts = [t.rsplit(":", 1)[0] for s in job.get("static_configs", []) for t in s["targets"]]
        hosts += [name for dns in job.pop("dns_sd_configs", []) for name in dns["names"]]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{local[h]}" for h in hosts]}]
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    for alerting in config["alerting"]["alertmanagers"]:
        hosts = [t.rsplit(":", 1)[0] for s in alerting["static_configs"] for t in s["targets"]]
        alerting["static_configs"] = [{"targets": [f"127.0.0.1:{local[h]}" for h in hosts]}]
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    return config


def test_the_bundled_prometheus_config_scrapes_a_worker_the_exporter_the_api_and_flower(
    env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    exporter: HiveProcess,
    ports: dict[str, int],
    tmp_path: Path,
) -> None:
    start_worker(
        "--concurrency",
        "1",
        "--metrics-port",
        str(ports["worker"]),
        extra_env={"HIVE_METRICS_ADDRESS": "127.0.0.1"},
    )
    flower = HiveProcess(
        ["flower", "--port", str(ports["flower"])],
        {**env, "HIVE_FLOWER_BASIC_AUTH": "admin:flower-pw"},
        tmp_path / "flower.log",
    )
    try:
        api = Api(env, tmp_path / "api.log", "--workers", "2")
    except Exception:
        flower.stop()  # else it outlives the test
        raise
    alertmanager_port = free_port()
    try:
        prometheus = Prometheus(
            tmp_path / "bundled",
            {},
            config=_bundled_config({**ports, "api": api.port}, alertmanager_port),
        )
    except Exception:
        api.stop()
        flower.stop()
        raise
    try:
        flower.wait_for_log("Visit me at", timeout_s=60)
        for job in ("hive-workers", "hive-exporter", "hive-api", "flower"):
            _eventually(prometheus, f'up{{job="{job}"}}', lambda v: v == 1, f"{job} is up")
        submit(env, "echo-one", [{"text": "scraped"}])

        # Flower needs no credentials for /metrics: the job has none.
        _eventually(
            prometheus,
            'sum(flower_events_total{job="flower",task="hive.step.echo",type="task-succeeded"})',
            lambda v: v == 1,
            "flower's count of the step, under its agent's name",
        )
        _eventually(
            prometheus,
            'sum(hive_steps_total{job="hive-workers",agent="echo",status="succeeded"})',
            lambda v: v == 1,
            "the worker's count",
        )
        _eventually(
            prometheus,
            'hive_runs_total{job="hive-exporter",pipeline="echo-one",status="succeeded"}',
            lambda v: v == 1,
            "the exporter's count of closed runs",
        )
        _eventually(
            prometheus,
            'sum(hive_api_requests_total{job="hive-api",route="/metrics",status="200"})',
            lambda v: v >= 1,
            "the API's count of Prometheus's own scrapes",
        )
        (configured,) = prometheus.api("alertmanagers")["activeAlertmanagers"]
        assert configured["url"] == f"http://127.0.0.1:{alertmanager_port}/api/v2/alerts"
        groups = prometheus.api("rules")["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} >= {
            "HiveNoLiveWorker", "HiveRunFailureRatio", "HiveQueueStalled"
        }  # fmt: skip
        assert all(r.get("health") != "err" for g in groups for r in g["rules"])
    finally:
        prometheus.stop()
        api.stop()
        flower.stop()
