"""What a step reserves against budgets: the llm agent's estimate of one call, and the
refusal's figures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hive.agents.base import Agent
from hive.agents.builtin.llm import LlmAgent
from hive.errors import BudgetExceeded
from hive.settings import get_settings

PRICES = """
models:
  model-a: {input: 2, output: 8}
  backup:model-b: {input: 1, output: 1}
"""


@pytest.fixture
def prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES)
    monkeypatch.setenv("HIVE_LLM_PRICES_FILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def step(**fields: Any) -> dict[str, Any]:
    return {
        "provider": "local",
        "base_url": "http://llm.test/v1",
        "model": "model-a",
        "messages": [{"role": "user", "content": "x" * 400}],
        **fields,
    }


def prompt_tokens(fields: dict[str, Any]) -> int:
    messages = [{"role": m["role"], "content": m["content"]} for m in fields["messages"]]
    return len(json.dumps(messages, ensure_ascii=False)) // 4


def test_an_llm_step_reserves_its_prompt_and_max_tokens_at_its_models_price(
    prices: Path,
) -> None:
    data = step(max_tokens=1000)

    estimate = LlmAgent().estimate_cost(data)

    assert estimate == pytest.approx((prompt_tokens(data) * 2 + 1000 * 8) / 1e6)


def test_without_max_tokens_the_answer_is_reserved_at_256_tokens(prices: Path) -> None:
    data = step()

    assert LlmAgent().estimate_cost(data) == pytest.approx(
        (prompt_tokens(data) * 2 + 256 * 8) / 1e6
    )


def test_the_dearest_priced_endpoint_of_the_chain_is_reserved(prices: Path) -> None:
    cheap_first = step(
        model="model-b",
        provider="backup",
        fallback=[{"provider": "local", "base_url": "http://llm.test/v1", "model": "model-a"}],
    )
    unpriced_fallback = step(
        fallback=[{"provider": "x", "base_url": "http://llm.test/v1", "model": "unknown"}]
    )

    assert LlmAgent().estimate_cost(cheap_first) == pytest.approx(
        (prompt_tokens(cheap_first) * 2 + 256 * 8) / 1e6
    )
    assert LlmAgent().estimate_cost(unpriced_fallback) == LlmAgent().estimate_cost(step())


def test_an_unpriced_model_or_an_invalid_input_reserves_nothing(prices: Path) -> None:
    assert LlmAgent().estimate_cost(step(model="unknown")) is None
    assert LlmAgent().estimate_cost({"model": "model-a"}) is None


def test_other_agents_estimate_nothing() -> None:
    assert Agent().estimate_cost({"text": "x"}) is None


def test_a_refusal_names_its_budget_and_the_excess() -> None:
    exceeded = BudgetExceeded("tenant_daily", 1.0, 0.7, 0.2, 0.3, tenant="acme")

    assert exceeded.excess_usd == pytest.approx(0.2)
    assert exceeded.detail() == {
        "budget": "tenant_daily", "tenant": "acme", "limit_usd": 1.0, "spent_usd": 0.7,
        "reserved_usd": 0.2, "estimate_usd": 0.3, "excess_usd": pytest.approx(0.2),
    }  # fmt: skip
    assert str(exceeded) == (
        "the daily budget of tenant 'acme' of 1 USD would be exceeded by 0.2 USD "
        "(spent 0.7, reserved 0.2, this step's estimate 0.3)"
    )
    rebuilt = BudgetExceeded(*exceeded.args)  # Celery rebuilds exceptions from their args
    assert rebuilt.detail() == exceeded.detail()
