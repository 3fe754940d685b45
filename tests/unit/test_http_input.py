"""The ``http`` agent's input, checked when a pipeline loads; credentials by variable name;
``Retry-After`` read as seconds."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hive.addresses import url_problems
from hive.agents import AgentRegistry
from hive.agents.base import AgentContext
from hive.agents.builtin.http import HttpAgent
from hive.agents.builtin.http_transport import retry_after_s
from hive.errors import CredentialError, InvalidAgentInput, PipelineError, SettingsError
from hive.pipelines import load_pipeline_file
from hive.settings import credential, load_settings


def problems(step_input: dict[str, Any]) -> str:
    with pytest.raises(InvalidAgentInput) as raised:
        HttpAgent().execute(step_input, AgentContext("r", "s", 1))
    return str(raised.value)


@pytest.mark.parametrize(
    ("step_input", "expected"),
    [
        ({"path": "/x"}, "input: Value error, give either url or service (with path)"),
        ({"url": "http://a/", "service": "b"}, "give either url or service (with path)"),
        ({"url": "http://a/", "path": "/x"}, "path goes with service"),
        ({"url": "ftp://a/"}, "input.url: url must be an http:// or https:// URL"),
        ({"url": "http://u:pw@a/"}, "input.url: url must not carry user:password@"),
        ({"service": "no spaces", "path": "/"}, "input.service: service name 'no spaces' must"),
        ({"service": "s", "path": "x"}, "input.path: a path starts with /"),
        ({"service": "s", "path": "/x?a=1"}, "input.path: put the query in `query`"),
        ({"url": "http://a/", "method": "BREW"}, "input.method: Input should be 'GET'"),
        ({"url": "http://a/", "json": {}, "text": "t"}, "give either json or text"),
        ({"url": "http://a/", "expect": [99]}, "input.expect: statuses are from 100 to 599"),
        ({"url": "http://a/", "timeout": {"read": 0}}, "input.timeout.read: Input should be"),
        ({"url": "http://a/", "headers": {"Bad Name": "x"}}, "input.headers: a header name"),
        ({"url": "http://a/", "headers": {"X-A": "a\r\nX-B: b"}}, "holds visible ASCII"),
        ({"url": "http://a/", "headers": {"authorization": "Bearer x"}}, "carries credentials"),
        ({"url": "http://a/", "headers": {"Cookie": "sid=1"}}, "carries credentials"),
        ({"url": "http://a/", "headers": {"HOST": "b"}}, "header 'Host' is refused: the host"),
        (
            {
                "url": "http://a/",
                "headers": {"X-Key": "1"},
                "auth": {"type": "header", "header": "x-key", "env": "K"},
            },
            "header 'x-key' is set by auth; leave it out of headers",
        ),
        (
            {"url": "http://a/", "auth": {"type": "bearer", "env": "sk-live-123"}},
            "input.auth.bearer.env: must be the name of an environment variable",
        ),
        (
            {"url": "http://a/", "auth": {"type": "bearer", "env": "HIVE_DATABASE_URL"}},
            "HIVE_DATABASE_URL is one of Hive's own settings",
        ),
        ({"url": "http://a/", "auth": {"type": "bearer", "token": "x"}}, "auth.bearer.env"),
        ({"url": "http://a/", "auth": {"type": "oauth", "env": "X"}}, "input.auth: Input tag"),
        ({"url": "http://a/", "body": "x"}, "input.body: Extra inputs are not permitted"),
        # Hosts no request can go to: each raised httpx.InvalidURL out of the agent (a
        # failure retried, and counted against the host's breaker).
        ({"url": "http://999.1.1.1/?k=1"}, "url cannot be called: Invalid IPv4 address"),
        ({"url": "http://a\u200b.com/"}, "url cannot be called: Invalid IDNA hostname"),
        ({"url": "http://[v1.x]/"}, "url cannot be called: Invalid IPv6 address"),
        ({"url": "http://[::1/"}, "input.url: url is not a URL: Invalid IPv6 URL"),
        ({"url": "http://\u2100.com/"}, "input.url: url is not a URL: netloc"),
    ],
)
def test_malformed_input_is_refused_naming_the_field(
    step_input: dict[str, Any], expected: str
) -> None:
    assert expected in problems(step_input)


def test_a_pipeline_with_a_malformed_http_step_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "calls.yaml"
    path.write_text(
        textwrap.dedent("""
            name: calls
            version: 1
            input_schema: {type: object, properties: {id: {type: string}}}
            steps:
              - id: fetch
                agent: http
                input:
                  service: partner
                  path: $input.id
                  headers: {Authorization: Bearer abc}
                  auth: {type: bearer, env: "partner token"}
                  timeout: {connect: -1}
            """)
    )
    registry = AgentRegistry()
    registry.register(HttpAgent)

    with pytest.raises(PipelineError) as raised:
        load_pipeline_file(path, registry)

    found = "\n".join(raised.value.problems)
    assert "step 'fetch': input.headers: header 'Authorization' carries credentials" in found
    assert "step 'fetch': input.auth.bearer.env: must be the name of an environment" in found
    assert "step 'fetch': input.timeout.connect: Input should be greater than 0" in found
    assert "input.path" not in found, "a reference is checked when the run resolves it"


def test_a_credential_is_read_at_call_time_and_its_problems_never_show_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARTNER_TOKEN", "first")
    assert credential("PARTNER_TOKEN") == "first"
    monkeypatch.setenv("PARTNER_TOKEN", "second")
    assert credential("PARTNER_TOKEN") == "second"

    monkeypatch.setenv("EMPTY_TOKEN", "")
    with pytest.raises(CredentialError) as raised:
        credential("EMPTY_TOKEN")
    assert str(raised.value) == "the environment variable EMPTY_TOKEN is not set on this worker"
    assert raised.value.variable == "EMPTY_TOKEN"
    monkeypatch.setenv("HIVE_FLOWER_BASIC_AUTH", "admin:pw")
    with pytest.raises(CredentialError, match="one of Hive's own settings") as raised:
        credential("HIVE_FLOWER_BASIC_AUTH")
    assert "pw" not in str(raised.value)
    # A value given where its name belongs is not repeated in the error.
    with pytest.raises(CredentialError) as raised:
        credential("sk-live-0123456789")
    assert "sk-live" not in str(raised.value) and raised.value.variable is None


def test_credential_prefixes_must_be_variable_name_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_CREDENTIAL_ENV_PREFIXES", "PARTNER_,my key")
    with pytest.raises(SettingsError, match="HIVE_CREDENTIAL_ENV_PREFIXES: 'my key' is not"):
        load_settings()
    monkeypatch.setenv("HIVE_CREDENTIAL_ENV_PREFIXES", " PARTNER_ , LLM_,")
    assert load_settings().credentials.prefixes == ("PARTNER_", "LLM_")


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("999999", 999999.0),
        ("nan", None),
        ("Fri, 02 Jan 2026 03:05:05 GMT", 60.0),
        ("Fri, 02 Jan 2026 03:00:00 GMT", 0.0),
        ("tomorrow", None),
    ],
)
def test_retry_after_is_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "url", ["http://[::1/", "http://\u2100.com/", "http://999.1.1.1/", "http://a\u200b.com/"]
)
def test_a_url_no_request_can_go_to_is_a_problem_never_an_exception(url: str) -> None:
    # urlsplit's ValueError reached `hive services register --url` as a traceback.
    (problem,) = url_problems(url, "url")
    assert problem.startswith(("url is not a URL: ", "url cannot be called: "))


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1", "http://localhost:11434/v1", "HTTP://Host.Example:/p",
        "http://127.0.0.1:8080/x?q=1&r=%20#frag", "http://-odd-.example./", "http://1.2.3/",
        "http://1.2.3.4.5/", "http://01.2.3.4/", "http://999.1.1.1/", "http://256.0.0.1:80/",
        "http://[::1]:8080/", "http://[v1.x]/", "http://a\u200b.com/", "http://b\u00fccher.de/",
        "http://example.com/\u00fc?x=\u00df", "http://example.com/%zz", "http://ex%41mple.com/",
        'http://ex"ample.com/', "http://ex_ample.com/", "http://ex{a}mple.com/",
        "http://example.com:65535/", "http://\uff45xample.com/",
    ],
)  # fmt: skip
def test_a_url_passes_only_if_httpx_can_send_to_it(url: str) -> None:
    # url_problems passes plain URLs without asking httpx (which a `hive` command would
    # otherwise import to check a pipeline): those must be URLs httpx takes.
    import httpx

    if not url_problems(url, "url"):
        httpx.URL(url)
