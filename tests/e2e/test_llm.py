"""The llm agent through a real `hive worker` against the OpenAI-compatible test server:
answers stored with their usage and cost, output_schema repairs, fallbacks, 429s retried
after their Retry-After, usage summed per run and tenant, and the API key nowhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hive import Client, RunFailed
from hive.errors import PermissionDenied
from tests.support.commands import describe, run_hive
from tests.support.db import attempts_of, rows, steps_of
from tests.support.llm_server import LlmServer, Reply
from tests.support.processes import HiveProcess, wait_until

KEY = "sk-e2e-2b9d41f7c0-never-stored"
BACKUP_KEY = "sk-e2e-backup-5e81aa93"
# Per 1M tokens: model-a 2 in, 8 out; model-b 1 and 1; model-s 1 and 2.
PRICES = """
currency: USD
models:
  model-a: {input: 2, output: 8}
  backup:model-b: {input: 1, output: 1}
  local:model-b: {input: 1, output: 1}
  model-s: {input: 1, output: 2}
"""


@pytest.fixture
def llm_worker(
    start_worker: Callable[..., HiveProcess], tmp_path: Path
) -> Callable[..., HiveProcess]:
    """A worker holding the API keys and the price table."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)

    def start(*args: str, extra_env: dict[str, str] | None = None) -> HiveProcess:
        env = {
            "TEST_LLM_API_KEY": KEY,
            "TEST_LLM_BACKUP_KEY": BACKUP_KEY,
            "HIVE_LLM_PRICES_FILE": str(prices),
            **(extra_env or {}),
        }
        return start_worker("--concurrency", "2", *args, extra_env=env)

    return start


def ask(question: str = "why?", tenant: str | None = None) -> Any:
    return Client().submit("llm-ask", {"question": question}, tenant=tenant)


@pytest.mark.timeout(120)
def test_an_answer_is_stored_with_its_usage_and_cost(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    llm.script("model-a", Reply.text("Because.", prompt_tokens=1200, completion_tokens=300))
    llm_worker()

    run = ask()
    output = run.wait(timeout=60)

    answer = output["ask"]
    assert (answer["content"], answer["model"], answer["provider"]) == (
        "Because.",
        "model-a",
        "local",
    )
    assert answer["usage"] == {"prompt_tokens": 1200, "completion_tokens": 300}
    assert answer["cost"] == pytest.approx(0.0048)
    stored = steps_of(run.id)["ask"].usage
    assert stored == {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "llm_calls": 1,
        "cost": 0.0048,
    }
    view = run.view()
    assert view.usage == {"prompt_tokens": 1200, "completion_tokens": 300, "llm_calls": 1}
    assert view.cost == pytest.approx(0.0048)
    (step,) = view.steps
    assert (step.usage, step.cost) == (view.usage, view.cost)
    shown = run_hive("runs", "show", str(run.id), "--json", env=env)
    assert shown.returncode == 0, describe(shown)
    data = json.loads(shown.stdout)
    assert (data["usage"], data["cost"]) == (view.usage, 0.0048)
    assert data["steps"][0]["usage"] == view.usage
    (request,) = llm.requests
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Question:\nwhy?"},
    ]
    assert request.headers["X-Request-ID"] == f"{run.id}-ask-1"


@pytest.mark.timeout(120)
def test_an_answer_that_fails_its_schema_once_is_repaired(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess]
) -> None:
    llm.script(
        "model-s",
        Reply.json({"label": "great", "score": 0.5}, prompt_tokens=40, completion_tokens=10),
        Reply.json({"label": "good", "score": 0.5}, prompt_tokens=80, completion_tokens=10),
    )
    llm_worker()

    run = Client().submit("llm-structured", {})
    output = run.wait(timeout=60)

    assert output == {"label": "good", "score": 0.5}
    first, second = llm.requests_for("model-s")
    assert "label" in first.messages[0]["content"]  # the schema, in a system message
    assert second.messages[-2] == {
        "role": "assistant",
        "content": json.dumps({"label": "great", "score": 0.5}),
    }
    assert "answer.label: 'great' is not one of ['good', 'bad']" in second.messages[-1]["content"]
    step = steps_of(run.id)["rate"]
    assert (step.attempt, step.output["repairs"], step.output["calls"]) == (1, 1, 2)
    assert step.usage == {"prompt_tokens": 120, "completion_tokens": 20, "llm_calls": 2,
                          "cost": pytest.approx(160 / 1e6)}  # fmt: skip


@pytest.mark.timeout(120)
def test_an_answer_that_never_fits_fails_for_good_naming_the_last_error_and_its_cost_is_kept(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess]
) -> None:
    llm.default("model-s", Reply.json({"label": "good"}, prompt_tokens=50, completion_tokens=5))
    llm_worker()

    run = Client().submit("llm-structured", {})
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=60)

    assert raised.value.step_id == "rate"
    step = steps_of(run.id)["rate"]
    # Permanent: one attempt of the four max_retries allows, and max_repairs + 1 calls.
    assert (step.status, step.attempt) == ("failed", 1)
    assert len(llm.requests_for("model-s")) == 2
    assert step.error["type"] == "PermanentError"
    assert step.error["message"] == (
        "the answer did not fit output_schema after 2 tries: answer: 'score' is a required property"
    )
    (attempt,) = attempts_of(run.id, "rate")
    assert attempt.outcome == "failed"
    # A failed attempt's calls still cost their tokens: recorded and summed in the run.
    assert attempt.usage == {"prompt_tokens": 100, "completion_tokens": 10, "llm_calls": 2,
                             "cost": pytest.approx(120 / 1e6)}  # fmt: skip
    view = run.view()
    assert view.usage == {"prompt_tokens": 100, "completion_tokens": 10, "llm_calls": 2}
    assert view.cost == pytest.approx(120 / 1e6)


@pytest.mark.timeout(120)
def test_the_fallback_model_answers_when_the_first_fails_with_5xx_or_times_out(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess]
) -> None:
    llm_worker()

    llm.script("model-a", Reply.failure(503))
    first = ask("after a 503?").wait(timeout=60)["ask"]
    llm.script("model-a", Reply.late(4))
    second = ask("after a timeout?").wait(timeout=60)["ask"]

    assert (first["model"], first["provider"], first["calls"]) == ("model-b", "backup", 1)
    assert (second["model"], second["provider"]) == ("model-b", "backup")
    to_b = llm.requests_for("model-b")
    assert [r.messages[-1]["content"] for r in to_b] == [
        "Question:\nafter a 503?",
        "Question:\nafter a timeout?",
    ]
    assert {r.headers["Authorization"] for r in to_b} == {f"Bearer {BACKUP_KEY}"}
    assert len(llm.requests_for("model-a")) == 2
    # Each fell back within its one attempt: no retry was used up.
    assert rows("SELECT attempt FROM step_runs WHERE step_id = 'ask'") == [(1,), (1,)]


@pytest.mark.timeout(120)
def test_a_429_everywhere_is_retried_after_its_retry_after(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess]
) -> None:
    llm.script("model-a", Reply.rate_limited("2"))
    llm.script("model-b", Reply.rate_limited("3"))
    llm_worker()

    run = ask()
    output = run.wait(timeout=60)

    assert output["ask"]["model"] == "model-a"
    (first,) = attempts_of(run.id, "ask")
    assert (first.attempt, first.outcome, first.error["type"]) == (1, "retried", "TransientError")
    assert "HTTP 429 (rate limited)" in first.error["message"]
    assert first.error["retry_after_s"] == 2
    assert first.usage is None  # no tokens used
    step = steps_of(run.id)["ask"]
    assert step.attempt == 2
    # The step's backoff is 0.1 s: the 2 s wait is the shorter Retry-After.
    assert step.started_at - first.finished_at >= timedelta(seconds=1.9)


@pytest.mark.timeout(180)
def test_usage_is_summed_per_run_and_per_tenant(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    llm.default("model-a", Reply.text("draft", prompt_tokens=100, completion_tokens=20))
    llm.default("model-b", Reply.text("review", prompt_tokens=30, completion_tokens=10))
    llm_worker()
    client = Client()

    two = client.submit("llm-two", {"text": "t"}, tenant="acme")
    runs = [two, ask(tenant="acme"), ask(tenant="globex"), ask()]
    for run in runs:
        run.wait(timeout=60)

    assert llm.requests_for("model-b")[0].messages[-1]["content"] == "draft"
    view = two.view()
    assert view.usage == {"prompt_tokens": 130, "completion_tokens": 30, "llm_calls": 2}
    assert view.cost == pytest.approx((100 * 2 + 20 * 8 + 30 + 10) / 1e6)
    (listed,) = client.list(pipeline="llm-two")
    assert (listed.usage, listed.cost) == (view.usage, view.cost)
    one_cost = (100 * 2 + 20 * 8) / 1e6
    listed = run_hive("usage", "--json", env=env)
    assert listed.returncode == 0, describe(listed)
    assert json.loads(listed.stdout) == [
        {"tenant": None, "runs": 1, "cost": pytest.approx(one_cost),
         "usage": {"prompt_tokens": 100, "completion_tokens": 20, "llm_calls": 1}},
        {"tenant": "acme", "runs": 2, "cost": pytest.approx(view.cost + one_cost),
         "usage": {"prompt_tokens": 230, "completion_tokens": 50, "llm_calls": 3}},
        {"tenant": "globex", "runs": 1, "cost": pytest.approx(one_cost),
         "usage": {"prompt_tokens": 100, "completion_tokens": 20, "llm_calls": 1}},
    ]  # fmt: skip
    only = run_hive("usage", "--tenant", "acme", "--since", "1h", env=env)
    assert only.returncode == 0, describe(only)
    lines = only.stdout.splitlines()
    assert lines[0].split()[:2] == ["TENANT", "RUNS"]
    assert lines[1].split()[:5] == ["acme", "2", "230", "50", "3"]
    assert len(lines) == 2
    later = run_hive("usage", "--since", "2999-01-01T00:00:00", "--json", env=env)
    assert json.loads(later.stdout) == []
    admin = Client(tenant="acme", role="admin")
    assert [v.tenant for v in admin.usage()] == ["acme"]
    assert admin.usage(tenant="globex") == []
    with pytest.raises(PermissionDenied):
        Client(tenant="acme", role="producer").usage()


@pytest.mark.timeout(240)
def test_an_open_breaker_passes_over_its_provider_whatever_its_on_open(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess], env: dict[str, str], tmp_path: Path
) -> None:
    """The first provider's breaker is open: the fallback answers, with on_open fail (the
    step does not fail), escalate (not held) or defer (not deferred). With none left to
    answer: deferred if one defers, held for a person if one escalates, else it fails."""
    limits = tmp_path / "limits.yaml"

    def policy(local: str, backup: str) -> None:
        limits.write_text(
            f"breakers:\n  provider:local: {{on_open: {local}}}\n"
            f"  provider:backup: {{on_open: {backup}}}\n"
        )

    def breaker(action: str, name: str) -> None:
        done = run_hive("breakers", action, name, env={**env, "HIVE_LIMITS_FILE": str(limits)})
        assert done.returncode == 0, describe(done)

    policy("fail", "defer")
    llm_worker(extra_env={"HIVE_LIMITS_FILE": str(limits)})
    breaker("open", "provider:local")
    for local in ("fail", "escalate", "defer"):
        policy(local, "defer")  # read again by the worker: it changed
        answer = ask(f"{local}?").wait(timeout=60)["ask"]
        assert (answer["provider"], answer["calls"]) == ("backup", 1), local
    assert llm.requests_for("model-a") == []
    assert rows("SELECT attempt, deferrals FROM step_runs") == [(1, 0)] * 3

    # Both open, local failing, backup deferring: the step waits for backup, no retry used.
    policy("fail", "defer")
    breaker("open", "provider:backup")
    waiting = ask("both open?")
    wait_until(lambda: steps_of(waiting.id)["ask"].deferrals >= 1, 60, "the step to wait")
    breaker("close", "provider:backup")
    assert waiting.wait(timeout=60)["ask"]["provider"] == "backup"
    assert attempts_of(waiting.id, "ask") == []

    # Local escalating, backup failing: a person decides; approved (backup closed by
    # then), the step runs, and the fallback answers.
    policy("escalate", "fail")
    breaker("open", "provider:backup")
    held = ask("escalated?")
    wait_until(lambda: steps_of(held.id)["ask"].status == "awaiting_approval", 60, "the step held")
    (approval,) = Client().approvals.list()
    assert approval.source == "breaker"
    assert approval.reason == "breaker provider:local is open (on_open: escalate)"
    breaker("close", "provider:backup")
    Client().approvals.approve(held.id, "ask")
    assert held.wait(timeout=60)["ask"]["provider"] == "backup"

    # Both failing: the step fails for good at once, naming both breakers.
    policy("fail", "fail")
    breaker("open", "provider:backup")
    with pytest.raises(RunFailed) as failed:
        ask("none left?").wait(timeout=60)
    assert failed.value.error["type"] == "BreakerOpen"
    assert "breakers provider:local, provider:backup are open" in failed.value.error["message"]
    assert llm.requests_for("model-a") == []


@pytest.mark.timeout(120)
def test_a_tenant_s_own_instance_of_the_model_service_is_never_sent_the_api_key(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess]
) -> None:
    """acme's admin registers an instance of llm-test: acme's steps, which send the worker's
    API key, still call only the shared one."""
    own = LlmServer()
    try:
        Client(tenant="acme", role="admin").services.register("llm-test", own.url)
        llm_worker()
        for i in range(6):  # picked at random: acme's would have taken some
            assert ask(f"q{i}", tenant="acme").wait(timeout=60)["ask"]["content"] == "ok"
        assert own.requests == []
    finally:
        own.close()
    assert {r.headers["Authorization"] for r in llm.requests} == {f"Bearer {KEY}"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("retry_after", ["nan", "inf"])
def test_a_429_whose_retry_after_is_no_number_of_seconds_is_retried_after_the_backoff(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess], retry_after: str
) -> None:
    llm.script("model-a", Reply.rate_limited(retry_after))
    llm.script("model-b", Reply.rate_limited(retry_after))
    llm_worker()

    # No number of seconds to wait: the step's own backoff. It was kept, as NaN or Infinity,
    # which PostgreSQL's JSON refuses: the failure went unrecorded and the run never ended.
    run = ask()
    output = run.wait(timeout=60)

    assert output["ask"]["model"] == "model-a"
    (first,) = attempts_of(run.id, "ask")
    assert (first.attempt, first.outcome) == (1, "retried")
    assert "retry_after_s" not in first.error


@pytest.mark.timeout(120)
def test_the_calls_of_an_attempt_deferred_mid_step_are_counted(
    llm: LlmServer, llm_worker: Callable[..., HiveProcess], tmp_path: Path
) -> None:
    """The answer fails its schema; the repair call meets the model's rate limit and the
    step is deferred: the first call's tokens and cost stay the deferred attempt's, and the
    run counts them beside the next attempt's."""
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  model:local:model-s: {rate: 1/3s}\n")
    llm.script(
        "model-s",
        Reply.json({"label": "great", "score": 0.5}, prompt_tokens=40, completion_tokens=10),
        Reply.json({"label": "good", "score": 0.5}, prompt_tokens=80, completion_tokens=10),
    )
    llm_worker(extra_env={"HIVE_LIMITS_FILE": str(limits)})

    run = Client().submit("llm-structured", {})
    assert run.wait(timeout=60) == {"label": "good", "score": 0.5}

    step = steps_of(run.id)["rate"]
    assert (step.status, step.deferrals, step.attempt) == ("succeeded", 1, 2)
    (deferred,) = attempts_of(run.id, "rate")
    assert (deferred.attempt, deferred.outcome, deferred.error) == (1, "deferred", None)
    assert deferred.usage == {"prompt_tokens": 40, "completion_tokens": 10, "llm_calls": 1,
                              "cost": pytest.approx(60 / 1e6)}  # fmt: skip
    view = run.view()
    assert view.usage == {"prompt_tokens": 120, "completion_tokens": 20, "llm_calls": 2}
    assert view.cost == pytest.approx(160 / 1e6)


@pytest.mark.timeout(120)
def test_the_calls_of_an_attempt_held_for_a_person_mid_step_are_counted(
    llm: LlmServer,
    llm_worker: Callable[..., HiveProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model's breaker (on_open: escalate) is opened while its first call is answered;
    the answer fails its schema and the repair call is turned away, so the step is held for
    a person: the first call's usage is the held attempt's, counted in the run."""
    from hive import service
    from hive.settings import get_settings

    limits = tmp_path / "limits.yaml"
    limits.write_text("breakers:\n  provider:local: {on_open: escalate}\n")
    llm.script(
        "model-s",
        Reply(content=json.dumps({"label": "great", "score": 0.5}), delay_s=2,
              prompt_tokens=40, completion_tokens=10),
        Reply.json({"label": "good", "score": 0.5}, prompt_tokens=80, completion_tokens=10),
    )  # fmt: skip
    llm_worker(extra_env={"HIVE_LIMITS_FILE": str(limits)})
    monkeypatch.setenv("HIVE_LIMITS_FILE", str(limits))
    get_settings.cache_clear()
    try:
        run = Client().submit("llm-structured", {})
        wait_until(lambda: llm.requests_for("model-s"), 30, "the first call")
        service.open_breaker(get_settings(), service.OPERATOR, "provider:local")
        wait_until(lambda: steps_of(run.id)["rate"].status == "awaiting_approval", 30, "a hold")

        (held,) = attempts_of(run.id, "rate")
        assert (held.attempt, held.outcome, held.error) == (1, "escalated", None)
        assert held.usage == {"prompt_tokens": 40, "completion_tokens": 10, "llm_calls": 1,
                              "cost": pytest.approx(60 / 1e6)}  # fmt: skip
        assert run.view().usage == {"prompt_tokens": 40, "completion_tokens": 10, "llm_calls": 1}

        service.close_breaker(get_settings(), service.OPERATOR, "provider:local")
        Client().approvals.approve(run.id, "rate")
        assert run.wait(timeout=60) == {"label": "good", "score": 0.5}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    view = run.view()
    assert view.usage == {"prompt_tokens": 120, "completion_tokens": 20, "llm_calls": 2}
    assert view.cost == pytest.approx(160 / 1e6)
