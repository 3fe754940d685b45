"""The shipped Prometheus configuration and alert rules pass promtool's checks and tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import binary

CONFIG = Path(__file__).resolve().parents[2] / "config" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args],
        cwd=CONFIG,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_checks_the_config_and_its_rules() -> None:
    done = _promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", sorted(CONFIG.glob("tests/*.yml")), ids=lambda p: p.name)
def test_promtool_unit_tests_of_the_alerts_pass(path: Path) -> None:
    done = _promtool("test", "rules", str(path.relative_to(CONFIG)))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = set()
    for path in CONFIG.glob("tests/*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["exp_alerts"]:  # seen firing, not only quiet
                    tested.add(case["alertname"])
    assert alerts == tested


def test_prometheus_scrapes_the_workers_the_exporter_the_api_and_flower() -> None:
    config = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"hive-workers", "hive-exporter", "hive-api", "flower"}
    assert jobs["hive-workers"]["dns_sd_configs"][0]["port"] == 9808
    assert jobs["hive-api"]["dns_sd_configs"][0] == {"names": ["api"], "type": "A", "port": 8080}
    assert jobs["hive-exporter"]["static_configs"][0]["targets"] == ["exporter:9809"]
    assert config["rule_files"] == ["alerts.yml"]
