"""Hive's Prometheus metrics: every name, label and help text, in one leaf module.

Names follow Prometheus conventions (``hive_<what>_<unit>``, ``_total`` counters,
``_seconds`` histograms); labels are bounded sets (agent, pipeline, queue, priority,
status, reason, task), never ids.

Two kinds live here:

- **Worker metrics**, updated by the step task and the outcome recorders in whatever
  process runs them. ``hive worker`` sets ``PROMETHEUS_MULTIPROC_DIR`` before anything
  imports prometheus-client, so each pool process writes its own files and the main process
  serves their sum (:mod:`hive.exposition`). Elsewhere (a producer, ``hive maintenance``)
  they count in memory and nobody reads them: recording is a few memory writes, never a
  round trip.
- **API metrics**, counted by ``hive api``'s processes, which share a multiprocess
  directory the same way; any of them serves the sum.
- **Farm-wide figures**, read from PostgreSQL and Redis on each scrape by ``hive exporter``
  (:mod:`hive.exporter`): only their names and help texts are here. ``hive_runs_total``
  and ``hive_purged_total`` are among them, counters PostgreSQL keeps (see
  ``FARM_COUNTERS``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_M = TypeVar("_M", bound=MetricWrapperBase)


class StepOutcome(StrEnum):
    """How one attempt of a step ended, as ``hive_steps_total`` counts it."""

    SUCCEEDED = "succeeded"
    RETRIED = "retried"
    """Failed; the next attempt is dispatched."""
    FAILED = "failed"
    """Failed for good: a dead letter."""
    LOST = "lost"
    """Not recorded: the attempt no longer owned the step (a late finish)."""


# From a millisecond agent to an hour-long one.
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)

STEPS = Counter(
    "hive_steps_total",
    "Attempts of steps that ended, by agent and outcome (succeeded, retried, failed, lost).",
    ["agent", "status"],
)
STEP_DURATION = Histogram(
    "hive_step_duration_seconds",
    "How long the agent ran for one attempt (input validation to validated output).",
    ["agent"],
    buckets=_STEP_BUCKETS,
)
STEP_WAIT = Histogram(
    "hive_step_wait_seconds",
    "From a step's message being sent (or its last need finishing, or its retry falling "
    "due) to a worker claiming it.",
    ["queue"],
    buckets=_STEP_BUCKETS,
)
STEP_RETRIES = Counter(
    "hive_step_retries_total",
    "Failed attempts that were retried, by agent and reason (the recorded error type: "
    "timeout, worker_lost, lease_expired, or the exception's class).",
    ["agent", "reason"],
)
STEPS_DEFERRED = Counter(
    "hive_steps_deferred_total",
    "Steps sent back to wait without running or using up a retry, by agent and reason "
    "(rate_limit, concurrency, breaker, other).",
    ["agent", "reason"],
)
# livesum: a pool process that dies takes its share with it (see hive.exposition).
STEPS_RUNNING = Gauge(
    "hive_steps_running",
    "Steps whose agent is running now, by agent.",
    ["agent"],
    multiprocess_mode="livesum",
)
ABANDONED_AGENTS = Gauge(
    "hive_agents_abandoned",
    "Agents still running on a thread pool's agent threads after their step timed out or "
    "their run was cancelled: their results are dropped; a worker stops when they fill "
    "its slots.",
    ["agent"],
    multiprocess_mode="livesum",
)
RUN_DURATION = Histogram(
    "hive_run_duration_seconds",
    "From a run's submit to its close by a worker (succeeded, or failed by a step).",
    ["pipeline"],
    buckets=_RUN_BUCKETS,
)

# The llm agent's calls. provider and model are the names pipelines give their llm steps
# (a bounded set while pipelines do not take them from run input; the README says so).
LLM_CALLS = Counter(
    "hive_llm_calls_total",
    "Calls of the llm agent to a chat-completion API, by provider, model and outcome (ok, "
    "error: 5xx, timeout or no answer, rate_limited: 429, refused: another 4xx, deferred: "
    "not made, the farm's guard deferred it, breaker_open: not made, its breaker is open "
    "with on_open: fail or escalate).",
    ["provider", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "hive_llm_tokens_total",
    "Tokens the llm agent's calls used as the provider reported them, by provider, model "
    "and kind (prompt, completion).",
    ["provider", "model", "kind"],
)
LLM_COST = Counter(
    "hive_llm_cost_total",
    "What the llm agent's calls cost by the price table (HIVE_LLM_PRICES_FILE, in its "
    "currency), by provider and model; calls of a model the table lacks count nothing.",
    ["provider", "model"],
)

INPUT_SCREENED = Counter(
    "hive_input_screened_total",
    "Step inputs the input guard screened, by agent and outcome (pass, flag, block, "
    "escalate: what the injection score led to).",
    ["agent", "outcome"],
)

# Cost budgets (hive/guard/budgets.py): scope is run or tenant_daily.
BUDGET_WARNINGS = Counter(
    "hive_budget_warnings_total",
    "Budgets whose spending reached HIVE_BUDGET_WARN_AT of their limit (once per budget), "
    "by scope (run, tenant_daily).",
    ["scope"],
)
BUDGET_EXCEEDED = Counter(
    "hive_budget_exceeded_total",
    "Steps a budget turned away, each ending its run budget_exceeded, by scope (run, "
    "tenant_daily).",
    ["scope"],
)

WORKER_METRICS = (
    *(STEPS, STEP_DURATION, STEP_WAIT, STEP_RETRIES, STEPS_DEFERRED, STEPS_RUNNING),
    *(ABANDONED_AGENTS, RUN_DURATION, LLM_CALLS, LLM_TOKENS, LLM_COST, INPUT_SCREENED),
    *(BUDGET_WARNINGS, BUDGET_EXCEEDED),
)

# From a cached read to a long poll's minute.
_API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

API_REQUESTS = Counter(
    "hive_api_requests_total",
    "Requests `hive api` answered, by route template (never the raw path), method and status.",
    ["route", "method", "status"],
)
API_REQUEST_DURATION = Histogram(
    "hive_api_request_duration_seconds",
    "Seconds `hive api` took to answer, by route template, method and status.",
    ["route", "method", "status"],
    buckets=_API_BUCKETS,
)

API_METRICS = (API_REQUESTS, API_REQUEST_DURATION)
"""Served by every `hive api` process, summed over its ``--workers`` (:mod:`hive.exposition`)."""

# The reasons hive_steps_deferred_total counts a deferral under; any other is "other".
DEFER_REASONS = frozenset({"rate_limit", "concurrency", "breaker", "other"})


# Every label set met so far, per metric: the sets are bounded (see above).
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: _M, *values: str) -> _M:
    """``metric.labels(*values)``, looked up once per process and label set: ``labels()``
    checks and converts its arguments and takes a lock at every call, several times a step.
    The same child either way (prometheus-client keeps each one it made)."""
    key = (id(metric), values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found


def step_ended(agent: str, outcome: StepOutcome, reason: str | None = None) -> None:
    """Count one attempt's end; a retried one also counts under its reason."""
    child(STEPS, agent, outcome).inc()
    if outcome == StepOutcome.RETRIED:
        STEP_RETRIES.labels(agent, reason or "unknown").inc()


def llm_called(
    provider: str,
    model: str,
    outcome: str,
    *,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: float | None = None,
) -> None:
    """Count one call of the llm agent, the tokens it used and what they cost."""
    LLM_CALLS.labels(provider, model, outcome).inc()
    if prompt_tokens:
        LLM_TOKENS.labels(provider, model, "prompt").inc(prompt_tokens)
    if completion_tokens:
        LLM_TOKENS.labels(provider, model, "completion").inc(completion_tokens)
    if cost:
        LLM_COST.labels(provider, model).inc(cost)


def step_deferred(agent: str, reason: str) -> None:
    """Count one deferral, under a bounded reason."""
    STEPS_DEFERRED.labels(agent, reason if reason in DEFER_REASONS else "other").inc()


def run_closed(pipeline: str, duration_s: float) -> None:
    """How long a run a worker closed took from submit. (Its close is counted in
    PostgreSQL, with every other: see ``RUNS_CLOSED``.)"""
    child(RUN_DURATION, pipeline).observe(max(duration_s, 0.0))


# Farm-wide figures (hive exporter): name -> (help, labels). Gauges all.
RUNS_IN_FLIGHT = "hive_runs_in_flight"
QUEUE_DEPTH = "hive_queue_depth"
QUEUE_OLDEST = "hive_queue_oldest_seconds"
DEAD_LETTERS = "hive_dead_letters"
MAINTENANCE_LAST_SUCCESS = "hive_maintenance_last_success_timestamp_seconds"
MAINTENANCE_INTERVAL = "hive_maintenance_interval_seconds"
SERVICE_INSTANCES = "hive_service_instances"
WORKERS = "hive_workers"
BREAKER_STATE = "hive_breaker_state"
APPROVALS_PENDING = "hive_approvals_pending"
APPROVALS_OLDEST = "hive_approvals_oldest_pending_seconds"
EXPORTER_UP = "hive_exporter_source_up"
EXPORTER_SCRAPE = "hive_exporter_scrape_duration_seconds"
RUNS_CLOSED = "hive_runs_total"
PURGED = "hive_purged_total"
PURGE_KINDS = ("runs", "events", "workers", "budget_days", "audit")
"""What ``purge_retention`` deletes, as ``hive_purged_total`` labels them (and its
maintenance event's result names them)."""

FARM_FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    RUNS_IN_FLIGHT: ("Runs not yet finished, by pipeline and status.", ("pipeline", "status")),
    QUEUE_DEPTH: (
        "Messages waiting in the broker, by queue and priority (sum by queue for the total).",
        ("queue", "priority"),
    ),
    QUEUE_OLDEST: (
        "Age of the oldest step waiting in each queue: ready and sent, not yet claimed.",
        ("queue",),
    ),
    DEAD_LETTERS: ("Dead letters not yet replayed, by pipeline.", ("pipeline",)),
    MAINTENANCE_LAST_SUCCESS: (
        "Unix time of each maintenance task's last successful run.",
        ("task",),
    ),
    MAINTENANCE_INTERVAL: (
        "How often beat runs each maintenance task, as the exporter's settings say.",
        ("task",),
    ),
    SERVICE_INSTANCES: (
        "Registered instances of each service, by status (passing, warning, critical).",
        ("service", "status"),
    ),
    WORKERS: ("Workers in the registry, by state (online, offline, lost).", ("state",)),
    BREAKER_STATE: (
        "Each circuit breaker's state: 0 closed, 1 half-open (a probe may go), 2 open; kind "
        "is service or provider.",
        ("kind", "service"),
    ),
    APPROVALS_PENDING: ("Steps awaiting a person's approval, by pipeline.", ("pipeline",)),
    APPROVALS_OLDEST: (
        "How long the oldest pending approval of each pipeline has waited.",
        ("pipeline",),
    ),
    EXPORTER_UP: (
        "1 if the exporter could read the source (postgresql, redis) on this scrape, else 0.",
        ("source",),
    ),
    EXPORTER_SCRAPE: ("How long this scrape took to read every figure.", ()),
}

# Farm-wide counters (hive exporter): name -> (help, labels).
#
# hive_runs_total is here, not among the worker metrics, because workers are not the only
# ones to close runs: a cancel closes one in whatever process asked (a CLI that is gone a
# second later), beat closes expired runs and those a dying worker left open. A counter
# kept in each closing process's memory would miss those and restart from zero with the
# process. PostgreSQL counts every close instead, in the transaction that makes it (a
# trigger on runs, migration 0014), and never subtracts: retention deleting old runs and a
# replay reopening one leave it as it was, so rate() never sees it go down. Being a
# database's count, it survives the exporter's restarts; every exporter serves the same
# value, so take max() over them, not sum(), when running two. hive_purged_total is kept
# the same way, by the purge's own transactions (migration 0020): beat's purge runs in
# whichever worker takes its message, and that process's memory is no place for a counter.
FARM_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    RUNS_CLOSED: (
        "Runs closed, by pipeline and final status (succeeded, failed, cancelled, expired, "
        "budget_exceeded), "
        "whoever closed them: a replayed run counts again when it closes again.",
        ("pipeline", "status"),
    ),
    PURGED: (
        "Rows retention (purge_retention) deleted, by kind: runs (each with its steps, "
        "attempts and events), events, workers, budget_days, audit.",
        ("kind",),
    ),
}
