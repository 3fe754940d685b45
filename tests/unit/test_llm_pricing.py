"""The llm agent's price table: validated whole when loaded, priced per 1M tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive.agents.builtin.llm.pricing import PriceTable, load_price_table, price_table
from hive.errors import SettingsError

REPO = Path(__file__).resolve().parents[2]


def test_cost_is_prompt_and_completion_tokens_at_their_prices_per_million() -> None:
    table = PriceTable.model_validate({"models": {"m": {"input": 2.5, "output": 10}}})

    assert table.cost("any", "m", 1_000_000, 0) == 2.5
    assert table.cost("any", "m", 1200, 300) == pytest.approx(0.006)
    assert table.cost("any", "m", 0, 0) == 0.0
    assert table.cost("any", "unknown-model", 1200, 300) is None


def test_a_provider_qualified_price_wins_over_the_model_alone() -> None:
    table = PriceTable.model_validate(
        {"models": {"m": {"input": 1, "output": 1}, "azure:m": {"input": 3, "output": 4}}}
    )

    assert table.cost("openai", "m", 1_000_000, 1_000_000) == 2
    assert table.cost("azure", "m", 1_000_000, 1_000_000) == 7


def test_shipped_price_table_loads(tmp_path: Path) -> None:
    table = load_price_table(REPO / "config" / "prices.yaml")

    assert table.currency == "USD"
    assert table.price_of("openai", "gpt-4o-mini") is not None
    assert table.cost("local", "llama3.1:8b", 1000, 1000) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  m: {input: -1, output: 1}\n", "models.m.input: Input should be greater"),
        ("models:\n  m: {input: 1}\n", "models.m.output: Field required"),
        ("models:\n  m: {input: 1, output: 1, cached: 1}\n", "models.m.cached: Extra inputs"),
        ("models:\n  m: {input: .nan, output: 1}\n", "models.m.input:"),
        ("models:\n  m: {input: cheap, output: 1}\n", "models.m.input:"),
        ("currency: USD\nmodel: {}\n", "model: Extra inputs"),
        ("models: [a, b]\n", "models: Input should be a valid dictionary"),
        ("models: {m: {input: 1, output: 1}\n", "not YAML"),
    ],
)
def test_a_malformed_price_table_is_refused_naming_the_variable_the_file_and_the_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)

    with pytest.raises(SettingsError) as raised:
        load_price_table(path)

    assert raised.value.variable == "HIVE_LLM_PRICES_FILE"
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_every_problem_of_a_price_table_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  a: {input: -1, output: 1}\n  b: {input: 1}\n")

    with pytest.raises(SettingsError) as raised:
        load_price_table(path)

    assert len(raised.value.problems) == 2


def test_a_missing_price_table_means_no_prices_and_a_changed_one_is_read_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "prices.yaml"
    assert price_table(path) is None

    path.write_text("models:\n  m: {input: 1, output: 1}\n")
    assert price_table(path) == PriceTable.model_validate(
        {"models": {"m": {"input": 1, "output": 1}}}
    )
    path.write_text("models:\n  m: {input: 2, output: 2}\n  n: {input: 0, output: 0}\n")
    changed = price_table(path)
    assert changed is not None
    assert changed.cost("p", "m", 1_000_000, 0) == 2


def test_an_empty_price_table_file_prices_nothing(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("")

    assert load_price_table(path).models == {}
