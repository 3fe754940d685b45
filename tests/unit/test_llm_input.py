"""What an llm step takes: endpoints, messages, output_schema; credentials by name only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hive.agents.builtin.llm import LlmAgent, LlmInput, Message
from hive.agents.registry import AgentRegistry
from hive.errors import PermanentError, PipelineError
from hive.pipelines import load_pipelines
from hive.settings import credential

BASE: dict[str, Any] = {
    "provider": "local",
    "base_url": "http://127.0.0.1:8000/v1",
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
}


def test_the_llm_agent_ships_with_hive() -> None:
    assert AgentRegistry.discover().get("llm") is LlmAgent


def test_the_chain_is_the_step_endpoint_then_its_fallbacks_in_order() -> None:
    data = LlmInput.model_validate(
        {
            **BASE,
            "api_key_env": "KEY_A",
            "fallback": [
                {"provider": "b", "base_url": "https://b.example/v1/", "model": "mb"},
                {"provider": "c", "base_url": "https://c.example", "model": "mc"},
            ],
        }
    )

    chain = data.chain()

    assert [(p.provider, p.model, p.api_key_env) for p in chain] == [
        ("local", "m", "KEY_A"),
        ("b", "mb", None),
        ("c", "mc", None),
    ]
    assert chain[1].base_url == "https://b.example/v1"
    assert chain[0].resource_name == "local:m"


def test_a_service_of_the_registry_may_stand_for_the_base_url_in_the_chain() -> None:
    data = LlmInput.model_validate(
        {
            **{k: v for k, v in BASE.items() if k != "base_url"},
            "service": "model-server",
            "fallback": [{"provider": "b", "service": "backup-models", "model": "mb"}],
        }
    )

    assert [(p.service, p.base_url) for p in data.chain()] == [
        ("model-server", None),
        ("backup-models", None),
    ]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ({"service": "models"}, "either base_url or service, not both nor neither"),
        ({"base_url": None}, "either base_url or service, not both nor neither"),
        ({"base_url": None, "service": "no spaces"}, "service name 'no spaces' must be"),
    ],
    ids=["both", "neither", "bad-name"],
)
def test_an_endpoint_names_one_address(address: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        LlmInput.model_validate({**BASE, **address})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("base_url", "ftp://host/v1", "http:// or https://"),
        ("base_url", "https://user:secret@host/v1", "user:password@"),
        ("base_url", "https://host/v1?key=abc", "query"),
        # httpx.InvalidURL at every call, out of the agent, before the fix.
        ("base_url", "http://999.1.1.1/v1", "base_url cannot be called: Invalid IPv4"),
        ("api_key_env", "sk-abc123-the-key-itself", "name of an environment variable"),
        ("provider", "has space", "String should match pattern"),
        ("temperature", 3, "less than or equal to 2"),
        ("max_tokens", 0, "greater than or equal to 1"),
        ("max_repairs", 11, "less than or equal to 10"),
        ("output_schema", {"type": "banana"}, "not a valid JSON Schema"),
        ("messages", [], "at least 1 item"),
        ("messages", [{"role": "tool", "content": "x"}], "Input should be 'system'"),
        ("stream", True, "Extra inputs are not permitted"),
    ],
)
def test_a_malformed_input_is_refused_naming_the_field(
    field: str, value: Any, expected: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        LlmInput.model_validate({**BASE, field: value})

    assert expected in str(raised.value)
    assert field in str(raised.value)
    if field == "base_url":
        assert "secret" not in str(raised.value).split("input_value")[0]


def test_message_content_is_text_a_list_joined_by_lines_or_json() -> None:
    assert Message(role="user", content="plain").text() == "plain"
    assert Message(role="user", content=["Summarise:", "the text"]).text() == "Summarise:\nthe text"
    assert Message(role="user", content={"a": [1, "é"]}).text() == '{"a": [1, "é"]}'
    assert Message(role="user", content=["Data:", {"n": 1}]).text() == 'Data:\n{"n": 1}'


def test_a_pipeline_with_a_wrong_literal_in_an_llm_step_is_refused_at_load(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad.yaml").write_text(
        """
name: bad
input_schema: {type: object, properties: {q: {type: string}}}
steps:
  - id: ask
    agent: llm
    input:
      provider: p
      base_url: https://a.example/v1
      model: m
      temperature: 7
      max_tokens: $input.q
      messages: [{role: user, content: $input.q}]
      fallback: [{provider: b, base_url: "https://u:pw@b.example", model: x}]
"""
    )

    with pytest.raises(PipelineError) as raised:
        load_pipelines(tmp_path, AgentRegistry.discover())

    problems = "\n".join(raised.value.problems)
    assert "input.temperature" in problems
    assert "input.fallback.0.base_url" in problems
    assert "input.max_tokens" not in problems  # a reference: checked at run time


def test_credential_reads_the_named_variable_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_API_KEY", "sk-live-value")

    assert credential("PARTNER_API_KEY") == "sk-live-value"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MISSING_API_KEY", "MISSING_API_KEY is not set"),
        ("EMPTY_API_KEY", "EMPTY_API_KEY is not set"),
        ("HIVE_DATABASE_URL", "one of Hive's own settings"),
        ("hive_broker_url", "one of Hive's own settings"),
        ("not a name", "must be the name of an environment variable"),
    ],
)
def test_credential_refuses_a_missing_variable_or_hives_own_naming_it_without_a_value(
    name: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISSING_API_KEY", raising=False)
    monkeypatch.setenv("EMPTY_API_KEY", "")
    monkeypatch.setenv("HIVE_DATABASE_URL", "postgresql://u:db-password@h/hive")

    with pytest.raises(PermanentError) as raised:
        credential(name)

    assert expected in str(raised.value)
    assert "db-password" not in str(raised.value)
