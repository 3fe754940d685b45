"""Metric names and labels follow the conventions: hive_ prefix, units, bounded labels."""

from __future__ import annotations

import re

from prometheus_client import Counter, Gauge, Histogram

from hive import metrics

# Bounded sets only: never a run, step, task or worker id.
ALLOWED_LABELS = {
    *("agent", "pipeline", "queue", "priority", "status", "reason", "task", "source"),
    *("service", "state"),
    # The llm agent's: the providers and models pipelines name, the kind of token, and how
    # a call ended (a closed set); a breaker's kind (service, provider).
    *("provider", "model", "kind", "outcome"),
    # A budget's scope: run or tenant_daily.
    "scope",
}


def _name(metric: Counter | Gauge | Histogram) -> str:
    # prometheus-client keeps a counter's name without its _total.
    name = metric._name
    return f"{name}_total" if isinstance(metric, Counter) else name


def test_worker_metrics_are_named_and_labelled_by_the_conventions() -> None:
    names = {_name(m): m for m in metrics.WORKER_METRICS}
    assert set(names) == {
        "hive_steps_total",
        "hive_step_duration_seconds",
        "hive_step_wait_seconds",
        "hive_step_retries_total",
        "hive_steps_deferred_total",
        "hive_steps_running",
        "hive_agents_abandoned",
        "hive_run_duration_seconds",
        "hive_llm_calls_total",
        "hive_llm_tokens_total",
        "hive_llm_cost_total",
        "hive_input_screened_total",
        "hive_budget_warnings_total",
        "hive_budget_exceeded_total",
    }
    for name, metric in names.items():
        assert re.fullmatch(r"hive_[a-z_]+", name), name
        assert set(metric._labelnames) <= ALLOWED_LABELS, name
        if isinstance(metric, Histogram):
            assert name.endswith("_seconds"), name
        assert metric._documentation, name
    assert names["hive_steps_total"]._labelnames == ("agent", "status")
    assert names["hive_step_duration_seconds"]._labelnames == ("agent",)
    assert names["hive_step_wait_seconds"]._labelnames == ("queue",)
    assert names["hive_step_retries_total"]._labelnames == ("agent", "reason")
    assert names["hive_steps_deferred_total"]._labelnames == ("agent", "reason")
    assert names["hive_run_duration_seconds"]._labelnames == ("pipeline",)
    assert names["hive_llm_calls_total"]._labelnames == ("provider", "model", "outcome")
    assert names["hive_llm_tokens_total"]._labelnames == ("provider", "model", "kind")
    assert names["hive_llm_cost_total"]._labelnames == ("provider", "model")
    assert names["hive_budget_warnings_total"]._labelnames == ("scope",)
    assert names["hive_budget_exceeded_total"]._labelnames == ("scope",)


def test_the_running_gauge_sums_live_processes_only() -> None:
    # "all" (the default) would label every pool process by pid.
    assert metrics.STEPS_RUNNING._multiprocess_mode == "livesum"
    assert metrics.ABANDONED_AGENTS._multiprocess_mode == "livesum"


def test_farm_figures_are_named_and_labelled_by_the_conventions() -> None:
    assert set(metrics.FARM_FIGURES) == {
        "hive_runs_in_flight",
        "hive_queue_depth",
        "hive_queue_oldest_seconds",
        "hive_dead_letters",
        "hive_maintenance_last_success_timestamp_seconds",
        "hive_maintenance_interval_seconds",
        "hive_service_instances",
        "hive_workers",
        "hive_breaker_state",
        "hive_approvals_pending",
        "hive_approvals_oldest_pending_seconds",
        "hive_exporter_source_up",
        "hive_exporter_scrape_duration_seconds",
    }
    for name, (help_text, labels) in metrics.FARM_FIGURES.items():
        assert re.fullmatch(r"hive_[a-z_]+", name) and not name.endswith("_total"), name
        assert set(labels) <= ALLOWED_LABELS, name
        assert help_text, name
    assert metrics.FARM_FIGURES["hive_runs_in_flight"][1] == ("pipeline", "status")
    assert metrics.FARM_FIGURES["hive_queue_depth"][1] == ("queue", "priority")
    assert metrics.FARM_FIGURES["hive_dead_letters"][1] == ("pipeline",)
    assert metrics.FARM_FIGURES["hive_service_instances"][1] == ("service", "status")
    assert metrics.FARM_FIGURES["hive_workers"][1] == ("state",)
    assert metrics.FARM_FIGURES["hive_breaker_state"][1] == ("kind", "service")


def test_farm_counters_are_named_and_labelled_by_the_conventions() -> None:
    # Served by the exporter from PostgreSQL, not by workers: no worker metric shares a name.
    assert set(metrics.FARM_COUNTERS) == {"hive_runs_total", "hive_purged_total"}
    assert not set(metrics.FARM_COUNTERS) & {_name(m) for m in metrics.WORKER_METRICS}
    assert not set(metrics.FARM_COUNTERS) & set(metrics.FARM_FIGURES)
    for name, (help_text, labels) in metrics.FARM_COUNTERS.items():
        assert re.fullmatch(r"hive_[a-z_]+_total", name), name
        assert set(labels) <= ALLOWED_LABELS, name
        assert help_text, name
    assert metrics.FARM_COUNTERS["hive_runs_total"][1] == ("pipeline", "status")
    assert metrics.FARM_COUNTERS["hive_purged_total"][1] == ("kind",)


def test_a_retried_attempt_counts_under_its_reason() -> None:
    before = metrics.STEP_RETRIES.labels("unit-agent", "timeout")._value.get()
    metrics.step_ended("unit-agent", metrics.StepOutcome.RETRIED, reason="timeout")
    metrics.step_ended("unit-agent", metrics.StepOutcome.SUCCEEDED)
    assert metrics.STEP_RETRIES.labels("unit-agent", "timeout")._value.get() == before + 1
    assert metrics.STEPS.labels("unit-agent", "succeeded")._value.get() >= 1


def test_step_outcomes_extend_the_attempt_outcomes() -> None:
    from hive.statuses import AttemptOutcome, StepStatus

    assert {o.value for o in AttemptOutcome} <= {o.value for o in metrics.StepOutcome}
    assert StepStatus.SUCCEEDED.value in {o.value for o in metrics.StepOutcome}


def test_an_llm_call_counts_its_tokens_by_kind_and_its_cost() -> None:
    def value(metric: Counter, *labels: str) -> float:
        return float(metric.labels(*labels)._value.get())

    before = (
        value(metrics.LLM_CALLS, "unit", "m", "ok"),
        value(metrics.LLM_TOKENS, "unit", "m", "prompt"),
        value(metrics.LLM_TOKENS, "unit", "m", "completion"),
        value(metrics.LLM_COST, "unit", "m"),
    )
    metrics.llm_called("unit", "m", "ok", prompt_tokens=120, completion_tokens=30, cost=0.25)
    after = (
        value(metrics.LLM_CALLS, "unit", "m", "ok"),
        value(metrics.LLM_TOKENS, "unit", "m", "prompt"),
        value(metrics.LLM_TOKENS, "unit", "m", "completion"),
        value(metrics.LLM_COST, "unit", "m"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 120, 30, 0.25]


def test_a_deferral_is_counted_under_a_bounded_reason() -> None:
    def count(reason: str) -> float:
        return metrics.STEPS_DEFERRED.labels("echo", reason)._value.get()

    before = {r: count(r) for r in metrics.DEFER_REASONS}
    metrics.step_deferred("echo", "rate_limit")
    metrics.step_deferred("echo", "an agent's own words")

    assert count("rate_limit") == before["rate_limit"] + 1
    assert count("other") == before["other"] + 1


def test_api_metrics_are_labelled_by_route_template_method_and_status() -> None:
    names = {_name(m): m for m in metrics.API_METRICS}
    assert set(names) == {"hive_api_requests_total", "hive_api_request_duration_seconds"}
    for metric in names.values():
        assert metric._labelnames == ("route", "method", "status")
        assert metric._documentation
