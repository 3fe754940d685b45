"""The shipped monitoring reads only what Hive serves: every metric the alert rules, their
promtool tests, the Grafana dashboard and the README name is one the code defines
(hive/metrics.py: the workers', the exporter's and the API's), with the labels the code
gives it, and the label values a closed set of the code's. promtool and Prometheus accept
a query of a metric nobody serves (it is merely empty), so only a check against the code
catches a renamed metric or label before a dashboard goes blank or an alert goes quiet."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Histogram

from hive import metrics
from hive.statuses import FINAL_RUN_STATUSES, RunStatus, ServiceStatus

ROOT = Path(__file__).resolve().parents[2]
TARGET_LABELS = {"job", "instance"}  # Prometheus adds these to every scraped series


def _served() -> dict[str, set[str]]:
    """Every series name Hive serves -> its labels."""
    served: dict[str, set[str]] = {}
    for metric in (*metrics.WORKER_METRICS, *metrics.API_METRICS):
        name, labels = metric._name, set(metric._labelnames)
        if isinstance(metric, Counter):
            served[f"{name}_total"] = labels
        elif isinstance(metric, Histogram):
            served[f"{name}_bucket"] = labels | {"le"}
            served[f"{name}_sum"] = served[f"{name}_count"] = labels
        else:
            served[name] = labels
    for name, (_, labels) in {**metrics.FARM_FIGURES, **metrics.FARM_COUNTERS}.items():
        served[name] = set(labels)
    return served


SERVED = _served()
# A histogram as the README names it: the family, not its series.
FAMILIES = {
    **SERVED,
    **{m._name: set(m._labelnames) for m in (*metrics.WORKER_METRICS, *metrics.API_METRICS)},
}
# Not Hive's: Prometheus's own and Flower's (flower/events.py), which the config scrapes.
OTHERS = {"up": set(), "flower_events_total": {"worker", "type", "task"}}
KNOWN = {**SERVED, **OTHERS}

# Label values the code takes from a closed set.
VALUES: dict[tuple[str, str], set[str]] = {
    ("hive_runs_total", "status"): {s.value for s in FINAL_RUN_STATUSES},
    ("hive_runs_in_flight", "status"): {s.value for s in RunStatus},
    ("hive_service_instances", "status"): {s.value for s in ServiceStatus},
    ("hive_exporter_source_up", "source"): {"postgresql", "redis"},
    ("up", "job"): {"hive-workers", "hive-exporter", "hive-api", "flower"},
}


def _expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query the shipped monitoring makes."""
    rules = yaml.safe_load((ROOT / "config/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"alerts.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]
    for path in sorted((ROOT / "config/prometheus/tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                yield f"{path.name}: input series", series["series"]
            for case in test.get("promql_expr_test", []):
                yield f"{path.name}: promql_expr_test", case["expr"]
    dashboard = json.loads((ROOT / "config/grafana/dashboards/hive.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"hive.json: {panel['title']}", target["expr"]


EXPRESSIONS = list(_expressions())
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"([^\"]*)\"")
_GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")
_NAME = re.compile(r"\b((?:hive|flower)_[a-zA-Z0-9_]+|up)\b(?!\s*\()")


def _names(expr: str) -> set[str]:
    # Label names inside {...} and (...) of by/on are no metric names.
    bare = _GROUPING.sub(" ", re.sub(r"\{[^}]*\}", " ", expr))
    return set(_NAME.findall(bare))


def _grouped(expr: str, at: int) -> str:
    """The parenthesised group that starts at or after ``at`` (an aggregation's argument)."""
    start = expr.find("(", at)
    depth = 0
    for index in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[index], 0)
        if depth == 0:
            return expr[start : index + 1]
    return expr[start:]


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_metric_named_is_one_hive_serves(where: str, expr: str) -> None:
    unknown = _names(expr) - set(KNOWN)
    assert not unknown, f"{where}: {sorted(unknown)} served by nothing in hive/metrics.py"


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_label_matched_is_one_the_metric_has_with_a_value_it_takes(
    where: str, expr: str
) -> None:
    for name, body in _SELECTOR.findall(expr):
        if name not in KNOWN:
            continue  # the test above names it
        for label, op, value in _MATCHER.findall(body):
            assert label in KNOWN[name] | TARGET_LABELS, f"{where}: {name} has no label {label}"
            closed = VALUES.get((name, label))
            if closed is None or op.startswith("!"):
                continue
            values = value.split("|") if op == "=~" else [value]
            assert set(values) <= closed, (
                f"{where}: {name}{{{label}}} is never {sorted(set(values) - closed)}; "
                f"it takes {sorted(closed)}"
            )


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_label_grouped_by_is_one_the_grouped_metrics_have(where: str, expr: str) -> None:
    for match in _GROUPING.finditer(expr):
        keyword, listed = match.groups()
        labels = {label.strip() for label in listed.split(",") if label.strip()}
        # by/without name the labels of the series inside the aggregation that follows;
        # on/ignoring the labels both sides of a binary operation share.
        scope = _grouped(expr, match.end()) if keyword in ("by", "without") else expr
        for name in _names(scope) & set(SERVED):
            missing = labels - SERVED[name] - TARGET_LABELS
            assert not missing, f"{where}: {keyword} {sorted(missing)}: {name} has no such label"


def test_every_api_route_the_monitoring_names_is_a_route_of_the_api() -> None:
    # docs/openapi.json is the app's (tests/e2e/test_api.py holds them equal).
    routes = {*json.loads((ROOT / "docs/openapi.json").read_text())["paths"], "other"}
    named = {
        value
        for _, expr in EXPRESSIONS
        for name, body in _SELECTOR.findall(expr)
        if name.startswith("hive_api_")
        for label, _, value in _MATCHER.findall(body)
        if label == "route"
    }
    assert named, "the monitoring names API routes"
    assert named <= routes, sorted(named - routes)


_README_METRIC = re.compile(r"`(hive_[a-z_]+)(?:\{([a-z_,]*)\})?`")


def test_every_metric_the_readme_names_is_served_with_the_labels_it_shows() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = _README_METRIC.findall(readme)
    assert shown
    for name, listed in shown:
        assert name in FAMILIES, f"README.md names {name}, which nothing serves"
        if listed:
            assert set(listed.split(",")) == FAMILIES[name] - {"le"}, (
                f"README.md shows {name}{{{listed}}}; the code labels it "
                f"{{{','.join(sorted(FAMILIES[name]))}}}"
            )
