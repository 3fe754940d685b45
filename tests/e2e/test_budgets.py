"""Cost budgets through real `hive worker` processes and the OpenAI-compatible test server:
a run stops at its budget with its remaining steps skipped, a tenant's daily budget holds
across runs, 80 % of a budget is a warning, and two workers cannot both spend the last
dollar. Every decision is an event."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hive import Client, RunFailed
from tests.support.commands import describe, run_hive
from tests.support.db import rows, steps_of
from tests.support.llm_server import LlmServer, Reply
from tests.support.processes import HiveProcess, wait_until
from tests.support.redis_server import free_port

KEY = "sk-e2e-budgets-4f1c2a"
PRICES = """
currency: USD
models:
  model-a: {input: 2, output: 8}
  backup:model-b: {input: 1, output: 1}
"""
# 1200 prompt and 300 completion tokens of model-a: 0.0048 USD.
COSTLY = {"prompt_tokens": 1200, "completion_tokens": 300}
COSTLY_USD = 0.0048


@pytest.fixture
def worker(start_worker: Callable[..., HiveProcess], tmp_path: Path) -> Callable[..., HiveProcess]:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)

    def start(
        *args: str, name: str | None = None, extra_env: dict[str, str] | None = None
    ) -> HiveProcess:
        env = {"TEST_LLM_API_KEY": KEY, "TEST_LLM_BACKUP_KEY": KEY,
               "HIVE_LLM_PRICES_FILE": str(prices), **(extra_env or {})}  # fmt: skip
        return start_worker("--concurrency", "1", *args, extra_env=env, name=name)

    return start


def events_of(run_id: Any) -> list[tuple[str, str | None, dict[str, Any]]]:
    found = rows(
        "SELECT kind, step_id, detail FROM events WHERE run_id = :id AND kind LIKE 'budget%'"
        " ORDER BY id",
        id=str(run_id),
    )
    return [(r.kind, r.step_id, r.detail) for r in found]


@pytest.mark.timeout(120)
def test_a_run_stops_at_its_budget_and_its_remaining_steps_are_skipped(
    llm: LlmServer, worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    llm.default("model-a", Reply.text("a long draft", **COSTLY))
    port = free_port()
    worker("--metrics-port", str(port))

    run = Client().submit("llm-budgeted", {"text": "write"})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=60)

    assert raised.value.status == "budget_exceeded"
    assert raised.value.step_id == "review"
    steps = steps_of(run.id)
    assert {s: steps[s].status for s in steps} == {
        "draft": "succeeded", "review": "skipped", "polish": "skipped",
    }  # fmt: skip
    assert len(llm.requests) == 1  # the review was never asked
    kinds = [(kind, step) for kind, step, _ in events_of(run.id)]
    assert kinds == [
        ("budget_reserved", "draft"),
        ("budget_settled", "draft"),
        ("budget_warning", "draft"),
        ("budget_exceeded", "review"),
    ]
    _, _, settled = events_of(run.id)[1]
    assert settled["cost_usd"] == pytest.approx(COSTLY_USD)
    _, _, warning = events_of(run.id)[2]
    assert (warning["budget"], warning["limit_usd"]) == ("run", 0.005)
    assert warning["spent_usd"] == pytest.approx(COSTLY_USD)
    _, _, exceeded = events_of(run.id)[3]
    assert (exceeded["budget"], exceeded["limit_usd"]) == ("run", 0.005)
    assert exceeded["spent_usd"] == pytest.approx(COSTLY_USD)
    assert exceeded["estimate_usd"] > 0
    assert exceeded["excess_usd"] == pytest.approx(
        COSTLY_USD + exceeded["estimate_usd"] - 0.005, abs=1e-9
    )
    error = raised.value.error
    assert (error["type"], error["budget"]) == ("budget_exceeded", "run")
    assert "the run's budget of 0.005 USD would be exceeded by" in error["message"]
    # The CLI lists the new status and shows the run with it.
    listed = run_hive("runs", "list", "--status", "budget_exceeded", "--json", env=env)
    assert listed.returncode == 0, describe(listed)
    assert [r["id"] for r in json.loads(listed.stdout)] == [str(run.id)]
    assert json.loads(listed.stdout)[0]["budget_usd"] == 0.005
    shown = run_hive("runs", "show", str(run.id), env=env)
    assert "budget   0.004800 of 0.005000 USD spent" in shown.stdout, describe(shown)
    # The worker counted the warning and the refusal.
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'hive_budget_warnings_total{scope="run"} 1.0' in scraped
    assert 'hive_budget_exceeded_total{scope="run"} 1.0' in scraped


@pytest.mark.timeout(120)
def test_a_submits_own_budget_replaces_its_pipelines(
    llm: LlmServer, worker: Callable[..., HiveProcess]
) -> None:
    llm.default("model-a", Reply.text("fine", **COSTLY))
    worker()

    run = Client().submit("llm-budgeted", {"text": "write"}, budget_usd=1.0)

    assert run.wait(timeout=60) == "fine"
    assert len(llm.requests) == 3
    spent = rows("SELECT budget_spent_usd, budget_reserved_usd FROM runs WHERE id = :id",
                 id=str(run.id))[0]  # fmt: skip
    assert float(spent.budget_spent_usd) == pytest.approx(3 * COSTLY_USD)
    assert float(spent.budget_reserved_usd) == 0
    assert "budget_warning" not in [kind for kind, _, _ in events_of(run.id)]


@pytest.mark.timeout(150)
def test_a_tenants_daily_budget_holds_across_its_runs(
    llm: LlmServer, worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    llm.default("model-a", Reply.text("Because.", **COSTLY))
    result = run_hive("budgets", "set", "acme", "--daily-usd", "0.0055", env=env)
    assert result.returncode == 0, describe(result)
    worker()

    first = Client().submit("llm-ask", {"question": "why?"}, tenant="acme")
    assert first.wait(timeout=60)["ask"]["content"] == "Because."
    other_tenant = Client().submit("llm-ask", {"question": "why?"}, tenant="globex")
    assert other_tenant.wait(timeout=60)["ask"]["content"] == "Because."
    second = Client().submit("llm-ask", {"question": "why not?"}, tenant="acme")
    with pytest.raises(RunFailed) as raised:
        second.wait(timeout=60)

    assert raised.value.status == "budget_exceeded"
    assert steps_of(second.id)["ask"].status == "skipped"
    warning = [d for kind, _, d in events_of(first.id) if kind == "budget_warning"]
    assert [(w["budget"], w["tenant"]) for w in warning] == [("tenant_daily", "acme")]
    (exceeded,) = [d for kind, _, d in events_of(second.id) if kind == "budget_exceeded"]
    assert (exceeded["budget"], exceeded["tenant"], exceeded["limit_usd"]) == (
        "tenant_daily", "acme", 0.0055,
    )  # fmt: skip
    assert exceeded["spent_usd"] == pytest.approx(COSTLY_USD)
    assert exceeded["excess_usd"] > 0
    shown = run_hive("budgets", "show", "acme", "--json", env=env)
    assert shown.returncode == 0, describe(shown)
    data = json.loads(shown.stdout)
    assert (data["tenant"], data["daily_usd"], data["reserved_usd"], data["warned"]) == (
        "acme", 0.0055, 0.0, True,
    )  # fmt: skip
    assert data["spent_usd"] == pytest.approx(COSTLY_USD)
    listed = run_hive("budgets", "list", "--json", env=env)
    assert [b["tenant"] for b in json.loads(listed.stdout)] == ["acme"]
    assert json.loads(listed.stdout)[0] == data


@pytest.mark.timeout(150)
def test_two_workers_cannot_both_spend_the_tenants_last_dollar(
    llm: LlmServer, worker: Callable[..., HiveProcess]
) -> None:
    # One step's estimate (about 0.0021: a short prompt and 256 answer tokens of model-a)
    # fits the budget, two do not; and once one has spent 0.0048, nothing fits.
    Client().budgets.set("acme", 0.003)
    llm.default("model-a", Reply(content="slow", delay_s=0.5, **COSTLY))
    worker(name="w-a")
    worker(name="w-b")

    runs = [Client().submit("llm-ask", {"question": f"q{i}"}, tenant="acme") for i in range(2)]
    outcomes = []
    for run in runs:
        try:
            run.wait(timeout=60)
            outcomes.append("succeeded")
        except RunFailed as exc:
            outcomes.append(exc.status)

    assert sorted(outcomes) == ["budget_exceeded", "succeeded"]
    assert len(llm.requests) == 1
    kinds = sorted(kind for run in runs for kind, _, _ in events_of(run.id))
    assert kinds == ["budget_exceeded", "budget_reserved", "budget_settled", "budget_warning"]
    (budget,) = Client().budgets.list()
    assert budget.spent_usd == pytest.approx(COSTLY_USD)
    assert budget.reserved_usd == 0


# Heartbeats twice a second; silent for 3 s is lost (the health sweep runs every second).
BEATING = {
    "HIVE_WORKER_HEARTBEAT_S": "0.5",
    "HIVE_WORKER_LOST_AFTER_S": "3",
    "HIVE_HEALTH_INTERVAL_S": "1",
    "HIVE_RECOVERY_INTERVAL_S": "1",
}


@pytest.mark.timeout(150)
def test_a_killed_workers_reservation_is_released_and_the_retry_fits_the_budget(
    llm: LlmServer,
    worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
) -> None:
    # One estimate fits acme's day, two do not: had the dead worker's reservation stayed,
    # the retry would have been turned away.
    Client().budgets.set("acme", 0.003)
    llm.script("model-a", Reply(content="never sent", delay_s=60), Reply.text("ok", **COSTLY))
    doomed = worker(name="doomed", extra_env=BEATING)
    run = Client().submit("llm-slow", {"question": "why?"}, tenant="acme")
    wait_until(lambda: len(llm.requests) == 1, 30, "the first call to be made")

    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker, mid-call, holding its reservation
    worker(name="rescuer", extra_env=BEATING)
    start_beat(extra_env=BEATING)

    assert run.wait(timeout=60)["ask"]["content"] == "ok"
    ask = steps_of(run.id)["ask"]
    assert (ask.attempt, ask.worker) == (2, "rescuer@test")
    budget_events = [(kind, d.get("attempt"), d.get("by")) for kind, _, d in events_of(run.id)]
    assert budget_events == [
        ("budget_reserved", 1, None),
        ("budget_settled", 1, "attempt_end"),  # released with the lost attempt, at no cost
        ("budget_reserved", 2, None),
        ("budget_settled", 2, "worker"),
        ("budget_warning", None, None),
    ]
    (budget,) = Client().budgets.list()
    assert budget.spent_usd == pytest.approx(COSTLY_USD)
    assert budget.reserved_usd == 0
