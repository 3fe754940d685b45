"""Fields an agent pins must be written in the pipeline: where ``http`` sends a credential,
and where ``llm`` sends its API key and what its calls are counted as. Checked when a
pipeline loads, and against an edited input (a replay's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from hive.agents.base import Agent
from hive.agents.builtin.http import HttpAgent
from hive.agents.builtin.llm import LlmAgent
from hive.agents.registry import AgentRegistry
from hive.errors import PipelineError
from hive.pipelines import load_pipeline_file
from hive.pipelines.checks import pinned_changes

SENDS_CREDENTIAL = "auth is set, and a run's input could send the credential elsewhere"
SENDS_KEY = "a run's input could send the API key elsewhere"
COUNTED = "it labels metrics and keys the farm's limits, which must stay a bounded set"
LITERAL = "must be written in the pipeline, not taken from a reference"

INPUT_SCHEMA = {
    "type": "object",
    "properties": {name: {} for name in ("url", "s", "env", "auth", "p", "m", "b", "fb", "q")},
}


def load(tmp_path: Path, agent: str, step_input: dict[str, Any], *, first: bool = False) -> Any:
    """Load a pipeline whose step ``call`` runs ``agent`` with ``step_input`` (after a step
    ``first`` when asked, whose output it may refer to)."""
    steps = [{"id": "call", "agent": agent, "input": step_input}]
    if first:
        steps.insert(0, {"id": "first", "agent": "echo", "input": {"text": "x"}})
        steps[1]["needs"] = ["first"]
    path = tmp_path / "p.yaml"
    document = {"name": "p", "version": 1, "input_schema": INPUT_SCHEMA, "steps": steps}
    path.write_text(yaml.safe_dump(document))
    return load_pipeline_file(path, AgentRegistry.discover())


def refusals(tmp_path: Path, agent: str, step_input: dict[str, Any], **kw: bool) -> list[str]:
    """The load problems about pinned fields, without the file's name."""
    with pytest.raises(PipelineError) as raised:
        load(tmp_path, agent, step_input, **kw)
    prefix = f"{tmp_path / 'p.yaml'}: step 'call': "
    assert all(p.startswith(prefix) for p in raised.value.problems), raised.value.problems
    return [p.removeprefix(prefix) for p in raised.value.problems]


BEARER = {"type": "bearer", "env": "PARTNER_TOKEN"}


# ----------------------------------------------------------------------------- http


@pytest.mark.parametrize(
    ("step_input", "expected"),
    [
        (
            {"url": "$input.url", "auth": BEARER},
            f"input.url: {LITERAL} ($input.url): {SENDS_CREDENTIAL}",
        ),
        (
            {"service": "$input.s", "path": "/x", "auth": BEARER},
            f"input.service: {LITERAL} ($input.s): {SENDS_CREDENTIAL}",
        ),
        (
            {"url": "https://partner.example/v1", "auth": "$input.auth"},
            f"input.auth: {LITERAL} ($input.auth): {SENDS_CREDENTIAL}",
        ),
        (
            {"url": "https://partner.example/v1", "auth": {"type": "bearer", "env": "$input.env"}},
            f"input.auth.env: inside auth, which {LITERAL} ($input.env): {SENDS_CREDENTIAL}",
        ),
    ],
    ids=["url", "service", "auth", "auth-env"],
)
def test_http_with_auth_refuses_a_reference_in_where_the_call_goes(
    tmp_path: Path, step_input: dict[str, Any], expected: str
) -> None:
    assert refusals(tmp_path, "http", step_input) == [expected]


def test_http_with_auth_refuses_a_url_from_an_earlier_step_too(tmp_path: Path) -> None:
    step_input = {"url": "$steps.first.text", "auth": BEARER}

    assert refusals(tmp_path, "http", step_input, first=True) == [
        f"input.url: {LITERAL} ($steps.first.text): {SENDS_CREDENTIAL}"
    ]


@pytest.mark.parametrize(
    "step_input",
    [
        {"url": "$input.url"},
        {"url": "$input.url", "auth": None},
        {"url": "https://partner.example/v1", "auth": BEARER, "query": {"q": "$input.q"}},
        {
            "service": "partner",
            "path": "$input.p",
            "auth": {"type": "header", "header": "X-Api-Key", "env": "PARTNER_KEY"},
            "headers": {"X-Trace": "$input.q"},
            "json": {"asked": "$input.q"},
        },
    ],
    ids=["url-without-auth", "auth-null", "query", "path-headers-body"],
)
def test_http_takes_from_the_run_whatever_does_not_decide_where_a_credential_goes(
    tmp_path: Path, step_input: dict[str, Any]
) -> None:
    pipeline = load(tmp_path, "http", step_input)

    assert pipeline.steps[0].input == step_input


# ----------------------------------------------------------------------------- llm

LLM: dict[str, Any] = {
    "provider": "openai",
    "base_url": "https://api.openai.example/v1",
    "model": "gpt-x",
    "api_key_env": "OPENAI_API_KEY",
    "messages": [{"role": "user", "content": "$input.q"}],
}
FALLBACK = {"provider": "local", "service": "models", "model": "small"}


@pytest.mark.parametrize(
    ("change", "where", "reference", "why"),
    [
        ({"provider": "$input.p"}, "input.provider", "$input.p", COUNTED),
        ({"model": "$input.m"}, "input.model", "$input.m", COUNTED),
        ({"base_url": "$input.b"}, "input.base_url", "$input.b", SENDS_KEY),
        ({"base_url": None, "service": "$input.s"}, "input.service", "$input.s", SENDS_KEY),
        ({"api_key_env": "$input.env"}, "input.api_key_env", "$input.env", SENDS_KEY),
    ],
    ids=["provider", "model", "base_url", "service", "api_key_env"],
)
def test_llm_refuses_a_reference_in_each_endpoint_field(
    tmp_path: Path, change: dict[str, Any], where: str, reference: str, why: str
) -> None:
    step_input = {k: v for k, v in {**LLM, **change}.items() if v is not None}

    assert refusals(tmp_path, "llm", step_input) == [f"{where}: {LITERAL} ({reference}): {why}"]


@pytest.mark.parametrize(
    ("fallback", "where"),
    [
        ("$input.fb", "input.fallback"),
        (["$input.fb"], "input.fallback.0"),
        ([{**FALLBACK, "service": "$input.s"}], "input.fallback.0.service"),
        ([{**FALLBACK, "model": "$input.m"}], "input.fallback.0.model"),
    ],
    ids=["whole", "an-endpoint", "its-service", "its-model"],
)
def test_llm_refuses_a_reference_anywhere_in_its_fallback(
    tmp_path: Path, fallback: Any, where: str
) -> None:
    (problem,) = refusals(tmp_path, "llm", {**LLM, "fallback": fallback})

    assert problem.startswith(f"{where}: ")
    assert ("inside fallback" in problem) == (where != "input.fallback")
    assert problem.endswith(
        f"{SENDS_KEY}, and its providers and models label metrics and key the farm's limits, "
        "which must stay a bounded set"
    )


def test_llm_refuses_every_reference_at_once(tmp_path: Path) -> None:
    step_input = {**LLM, "model": "$input.m", "base_url": "$input.b"}

    found = refusals(tmp_path, "llm", step_input)

    assert [p.split(":")[0] for p in found] == ["input.base_url", "input.model"]


def test_llm_takes_its_messages_and_settings_from_the_run(tmp_path: Path) -> None:
    step_input = {
        **LLM,
        "messages": [{"role": "system", "content": "$input.q"}, {"role": "user", "content": "hi"}],
        "temperature": "$input.q",
        "max_tokens": "$input.q",
        "output_schema": "$input.q",
        "fallback": [FALLBACK],
        "model": "$$model",  # an escaped literal: the model "$model"
    }

    pipeline = load(tmp_path, "llm", step_input)

    assert pipeline.steps[0].input == step_input


def test_an_agent_pins_nothing_unless_it_says_so() -> None:
    class Plain(Agent[BaseModel, BaseModel]):
        name = "plain"

    assert Plain.pinned_fields({"url": "$input.url", "auth": BEARER}) == {}
    assert HttpAgent.pinned_fields({"url": "$input.url"}) == {}
    assert set(HttpAgent.pinned_fields({"auth": BEARER})) == {"auth", "url", "service"}
    assert set(LlmAgent.pinned_fields({})) == {
        "provider", "model", "base_url", "service", "api_key_env", "fallback",
    }  # fmt: skip


# ----------------------------------------------------------------- edited inputs

HTTP_TEMPLATE = {"url": "https://partner.example/v1", "path": "$input.p", "auth": BEARER}


@pytest.mark.parametrize(
    ("agent", "template", "edited", "changed"),
    [
        (HttpAgent, HTTP_TEMPLATE, {**HTTP_TEMPLATE, "query": {"id": "7"}}, []),
        (HttpAgent, HTTP_TEMPLATE, {**HTTP_TEMPLATE, "url": "https://evil.example/"}, ["url"]),
        (HttpAgent, HTTP_TEMPLATE, {"url": "https://evil.example/"}, ["auth", "url"]),
        (
            HttpAgent,
            HTTP_TEMPLATE,
            {**HTTP_TEMPLATE, "auth": {"type": "bearer", "env": "OTHER_TOKEN"}},
            ["auth"],
        ),
        (
            HttpAgent,
            {"url": "$input.url"},
            {"url": "https://evil.example/", "auth": BEARER},
            ["auth", "url"],
        ),
        (HttpAgent, {"url": "$input.url"}, {"url": "https://elsewhere.example/"}, []),
        (LlmAgent, LLM, {**LLM, "temperature": 0.2, "messages": []}, []),
        (LlmAgent, LLM, {**LLM, "model": "gpt-y"}, ["model"]),
        (LlmAgent, LLM, {k: v for k, v in LLM.items() if k != "api_key_env"}, ["api_key_env"]),
        (LlmAgent, LLM, {**LLM, "fallback": [FALLBACK]}, ["fallback"]),
        (LlmAgent, {**LLM, "model": "$$model"}, {**LLM, "model": "$model"}, []),
        (LlmAgent, {**LLM, "model": "$input.m"}, {**LLM, "model": "$input.m"}, ["model"]),
    ],
    ids=[
        "http-query", "http-url", "http-credential-dropped-and-url", "http-other-variable",
        "http-credential-added", "http-no-auth", "llm-messages", "llm-model", "llm-key-dropped",
        "llm-fallback-added", "llm-escaped-literal", "llm-old-reference",
    ],
)  # fmt: skip
def test_an_edited_input_may_not_change_a_pinned_field(
    agent: type[Agent[Any, Any]],
    template: dict[str, Any],
    edited: dict[str, Any],
    changed: list[str],
) -> None:
    problems = pinned_changes(agent, template, edited)

    assert [where for where, _ in problems] == [f"input.{name}" for name in changed]
    for _, message in problems:
        assert message.startswith("may not differ from the pipeline's: ")
