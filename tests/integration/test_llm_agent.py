"""The llm agent in this process against the OpenAI-compatible test server (real HTTP on
loopback): what it sends, the fallback chain, failures sorted, usage reported, the farm's
guard obeyed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hive.agents.base import AgentContext, CallTicket, Resource
from hive.agents.builtin.llm import LlmAgent
from hive.errors import NoPassingInstance, PermanentError, StepDeferred, TransientError
from hive.settings import get_settings
from tests.support.http_service import HttpService
from tests.support.http_service import Reply as HttpReply
from tests.support.llm_server import LlmServer, Reply

KEY = "sk-test-7f3a9c-integration-key"


@pytest.fixture
def server() -> Iterator[LlmServer]:
    llm = LlmServer()
    yield llm
    llm.close()


@pytest.fixture(autouse=True)
def prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    table = tmp_path / "prices.yaml"
    table.write_text(
        "models:\n  model-a: {input: 2, output: 8}\n  backup:model-b: {input: 1, output: 1}\n"
    )
    monkeypatch.setenv("HIVE_LLM_PRICES_FILE", str(table))
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    monkeypatch.setenv("TEST_LLM_BACKUP_KEY", "sk-backup-key")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class Guard:
    """A CallGuard that records each call's resource and outcome, and defers some."""

    def __init__(self, defer: dict[str, float] | None = None) -> None:
        self.defer = defer or {}
        self.calls: list[tuple[str, int]] = []
        self.used: list[tuple[str, int]] = []
        self.failures: list[str] = []

    @contextlib.contextmanager
    def __call__(self, resource: Resource) -> Iterator[CallTicket]:
        if resource.name in self.defer:
            raise StepDeferred(f"breaker {resource} open", self.defer[resource.name])
        self.calls.append((resource.name, resource.tokens))
        guard = self

        class Ticket:
            def used_tokens(self, tokens: int) -> None:
                guard.used.append((resource.name, tokens))

            def failed(self) -> None:
                guard.failures.append(resource.name)

        try:
            yield Ticket()
        except Exception:
            self.failures.append(resource.name)
            raise


def step(server: LlmServer, **fields: Any) -> dict[str, Any]:
    return {
        "provider": "local",
        "base_url": server.url,
        "model": "model-a",
        "api_key_env": "TEST_LLM_KEY",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": ["Question:", "why?"]},
        ],
        "timeout_s": 1,
        **fields,
    }


BACKUP = {"provider": "backup", "model": "model-b", "api_key_env": "TEST_LLM_BACKUP_KEY"}


def run(data: dict[str, Any], guard: Guard | None = None) -> tuple[dict[str, Any], AgentContext]:
    ctx = AgentContext(run_id="r1", step_id="ask", attempt=1, trace_id="ab" * 16)
    if guard is not None:
        ctx.call = guard
    return LlmAgent().execute(data, ctx), ctx


def test_the_answer_comes_with_its_usage_and_cost_and_the_request_is_what_the_step_says(
    server: LlmServer,
) -> None:
    server.script("model-a", Reply.text("Because.", prompt_tokens=1200, completion_tokens=300))
    guard = Guard()

    output, ctx = run(step(server, temperature=0.3, max_tokens=50), guard)

    assert output["content"] == "Because."
    assert (output["provider"], output["model"], output["finish_reason"]) == (
        "local",
        "model-a",
        "stop",
    )
    assert output["usage"] == {"prompt_tokens": 1200, "completion_tokens": 300}
    assert output["cost"] == pytest.approx((1200 * 2 + 300 * 8) / 1e6)
    assert (output["calls"], output["repairs"], output["data"]) == (1, 0, None)
    assert ctx.usage == {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "llm_calls": 1,
        "cost": pytest.approx(0.0048),
    }
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Request-ID"] == "r1-ask-1"
    assert request.headers["traceparent"].startswith(f"00-{'ab' * 16}-")
    assert request.body == {
        "model": "model-a",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Question:\nwhy?"},
        ],
        "stream": False,
        "temperature": 0.3,
        "max_tokens": 50,
    }
    ((name, estimate),) = guard.calls
    assert name == "local:model-a" and estimate > 50
    assert guard.used == [("local:model-a", 1500)]
    assert guard.failures == []


def test_without_api_key_env_no_authorization_is_sent(server: LlmServer) -> None:
    run(step(server, api_key_env=None))

    assert "Authorization" not in server.requests[0].headers


@pytest.mark.parametrize(
    "failure",
    [Reply.failure(503), Reply.failure(500), Reply.late(5), Reply.malformed()],
    ids=["503", "500", "timeout", "malformed"],
)
def test_the_fallback_answers_when_the_first_provider_is_down(
    server: LlmServer, failure: Reply
) -> None:
    server.script("model-a", failure)
    server.script("model-b", Reply.text("from b", prompt_tokens=7, completion_tokens=3))
    guard = Guard()

    output, ctx = run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert (output["content"], output["provider"], output["model"]) == (
        "from b",
        "backup",
        "model-b",
    )
    assert ctx.usage["prompt_tokens"] == 7
    assert output["cost"] == pytest.approx(10 / 1e6)
    (to_b,) = server.requests_for("model-b")
    assert to_b.headers["Authorization"] == "Bearer sk-backup-key"
    assert guard.failures == ["local:model-a"]  # the breaker of the one that was down


def _usage_reply(usage: str) -> Reply:
    choice = '{"message": {"role": "assistant", "content": "from a"}, "finish_reason": "stop"}'
    return Reply(body=f'{{"choices": [{choice}], "usage": {usage}}}'.encode())


@pytest.mark.parametrize(
    "usage",
    [
        '{"prompt_tokens": 1e400, "completion_tokens": 3}',  # infinity, as Python reads it
        '{"prompt_tokens": 3, "completion_tokens": ' + "9" * 400 + "}",
        '{"prompt_tokens": 2000000000, "completion_tokens": 3}',
        "[" * 100_000 + "]" * 100_000,  # nested past reading: RecursionError
    ],
    ids=["infinite", "400 digits", "two billion", "nested"],
)
def test_an_answer_with_absurd_token_counts_or_nested_past_reading_is_no_answer(
    server: LlmServer, usage: str
) -> None:
    # They raised OverflowError out of the agent (the step failed, the tokens uncounted), or
    # were counted at a cost that would spend any budget.
    server.script("model-a", _usage_reply(usage))
    server.script("model-b", Reply.text("from b", prompt_tokens=7, completion_tokens=3))
    guard = Guard()

    output, ctx = run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert (output["content"], output["model"]) == ("from b", "model-b")
    assert (ctx.usage["prompt_tokens"], ctx.usage["completion_tokens"]) == (7, 3)
    assert guard.failures == ["local:model-a"]


def test_missing_or_negative_token_counts_are_counted_as_none(server: LlmServer) -> None:
    server.script("model-a", _usage_reply('{"prompt_tokens": -5}'))

    output, ctx = run(step(server))

    assert output["content"] == "from a"
    assert output["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
    assert (ctx.usage["prompt_tokens"], ctx.usage["llm_calls"]) == (0, 1)


def test_an_answer_larger_than_the_cap_is_not_read_and_the_fallback_is_asked(
    server: LlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It was read whole whatever its size: an endless answer filled the worker's memory.
    monkeypatch.setenv("HIVE_HTTP_MAX_RESPONSE_BYTES", "2000")
    get_settings.cache_clear()
    server.script("model-a", Reply.text("x" * 3000))
    server.script("model-b", Reply.text("from b"))
    guard = Guard()

    output, _ = run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert (output["content"], output["model"]) == ("from b", "model-b")
    assert guard.failures == ["local:model-a"]
    server.script("model-a", Reply.text("x" * 3000))
    with pytest.raises(TransientError, match=r"local:model-a: answered with more than 2000 bytes"):
        run(step(server))


def test_no_provider_answering_is_a_retryable_failure_naming_each(server: LlmServer) -> None:
    server.script("model-a", Reply.failure(502, error="bad gateway"))
    server.script("model-b", Reply.late(5))

    with pytest.raises(TransientError) as raised:
        run(step(server, fallback=[{**BACKUP, "base_url": server.url}]))

    message = str(raised.value)
    assert "local:model-a: HTTP 502: bad gateway" in message
    assert "backup:model-b: no answer within 1s" in message
    assert raised.value.retry_after_s is None


def test_a_429_tries_the_fallback_first(server: LlmServer) -> None:
    server.script("model-a", Reply.rate_limited("30"))
    guard = Guard()

    output, _ = run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert output["model"] == "model-b"
    assert guard.failures == []  # throttled is not down: the breaker does not count it
    assert ("local:model-a", 0) in guard.used


def test_a_429_everywhere_retries_after_the_shortest_retry_after(server: LlmServer) -> None:
    server.script("model-a", Reply.rate_limited("30"))
    server.script("model-b", Reply.rate_limited("7"))

    with pytest.raises(TransientError) as raised:
        run(step(server, fallback=[{**BACKUP, "base_url": server.url}]))

    assert raised.value.retry_after_s == 7
    assert "HTTP 429 (rate limited): Rate limit reached" in str(raised.value)


def test_another_4xx_fails_for_good_without_trying_the_fallback_and_hides_the_key(
    server: LlmServer,
) -> None:
    server.script("model-a", Reply.failure(401, error=f"Incorrect API key provided: {KEY}"))

    with pytest.raises(PermanentError) as raised:
        run(step(server, fallback=[{**BACKUP, "base_url": server.url}]))

    assert "local:model-a: HTTP 401: Incorrect API key provided: ***" in str(raised.value)
    assert KEY not in str(raised.value)
    assert server.requests_for("model-b") == []


def test_a_provider_the_farm_defers_is_skipped_for_the_next(server: LlmServer) -> None:
    guard = Guard(defer={"local:model-a": 20.0})

    output, _ = run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert output["model"] == "model-b"
    assert server.requests_for("model-a") == []


def test_every_provider_deferred_defers_the_step_for_the_shortest_countdown(
    server: LlmServer,
) -> None:
    guard = Guard(defer={"local:model-a": 20.0, "backup:model-b": 4.0})

    with pytest.raises(StepDeferred) as raised:
        run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert raised.value.countdown_s == 4.0
    assert "backup:model-b" in raised.value.reason
    assert server.requests == []


def test_deferred_and_down_together_retry_no_later_than_the_deferral(server: LlmServer) -> None:
    server.script("model-a", Reply.failure(503))
    guard = Guard(defer={"backup:model-b": 4.0})

    with pytest.raises(TransientError) as raised:
        run(step(server, fallback=[{**BACKUP, "base_url": server.url}]), guard)

    assert raised.value.retry_after_s == 4.0


def test_a_missing_api_key_variable_fails_for_good_naming_it(
    server: LlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_LLM_KEY")

    with pytest.raises(PermanentError, match="TEST_LLM_KEY is not set"):
        run(step(server))
    assert server.requests == []


def test_repairs_go_to_the_provider_that_answered_and_every_call_is_counted(
    server: LlmServer,
) -> None:
    server.script("model-a", Reply.failure(503))
    server.script(
        "model-b",
        Reply.json({"label": "meh"}, prompt_tokens=100, completion_tokens=10),
        Reply.json({"label": "good"}, prompt_tokens=150, completion_tokens=10),
    )
    schema = {"type": "object", "properties": {"label": {"enum": ["good", "bad"]}}}

    output, ctx = run(
        step(server, output_schema=schema, fallback=[{**BACKUP, "base_url": server.url}])
    )

    assert output["data"] == {"label": "good"}
    assert (output["calls"], output["repairs"]) == (2, 1)
    assert len(server.requests_for("model-a")) == 1
    assert output["usage"] == {"prompt_tokens": 250, "completion_tokens": 20}
    assert ctx.usage["llm_calls"] == 2
    repair = server.requests_for("model-b")[1].messages[-1]["content"]
    assert "answer.label: 'meh' is not one of ['good', 'bad']" in repair


def test_a_model_missing_from_the_price_table_is_counted_without_a_cost(
    server: LlmServer,
) -> None:
    output, ctx = run(step(server, model="model-unpriced"))

    assert output["cost"] is None
    assert "cost" not in ctx.usage
    assert ctx.usage["prompt_tokens"] == 10


def test_a_malformed_price_table_fails_the_step_before_any_call(
    server: LlmServer, tmp_path: Path
) -> None:
    Path(get_settings().llm.prices_file).write_text("models: {m: {input: -1, output: 0}}\n")

    with pytest.raises(PermanentError, match="HIVE_LLM_PRICES_FILE"):
        run(step(server))
    assert server.requests == []


def test_the_test_server_lists_its_models(server: LlmServer) -> None:
    import httpx

    server.default("model-z", Reply.text("z"))

    answer = httpx.get(f"{server.url}/models").json()

    assert [m["id"] for m in answer["data"]] == ["model-z"]


class Registry:
    """A ServiceLookup over a fixed table of service → address; records each pick."""

    def __init__(self, **addresses: str) -> None:
        self.addresses = addresses
        self.picked: list[str] = []

    def pick(self, service: str, exclude: Sequence[str] = (), *, shared_only: bool = False) -> str:
        self.picked.append(service)
        if service not in self.addresses:
            raise NoPassingInstance(service, {"critical": 1})
        return self.addresses[service]


def test_a_service_is_resolved_through_the_registry_at_the_call(server: LlmServer) -> None:
    server.script("model-a", Reply.text("by name"))
    data = {k: v for k, v in step(server).items() if k != "base_url"}
    ctx = AgentContext(run_id="r1", step_id="ask", attempt=1)
    ctx.services = registry = Registry(models=server.url + "/")

    output = LlmAgent().execute({**data, "service": "models"}, ctx)

    assert output["content"] == "by name"
    assert registry.picked == ["models"]
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_a_service_with_no_passing_instance_gives_way_to_the_fallback_without_a_breaker_failure(
    server: LlmServer,
) -> None:
    server.script("model-b", Reply.text("from b"))
    data = {k: v for k, v in step(server).items() if k != "base_url"}
    ctx = AgentContext(run_id="r1", step_id="ask", attempt=1)
    ctx.services = Registry()
    ctx.call = guard = Guard()

    output = LlmAgent().execute(
        {**data, "service": "down", "fallback": [{**BACKUP, "base_url": server.url}]}, ctx
    )

    assert output["model"] == "model-b"
    assert server.requests_for("model-a") == []
    assert guard.failures == []  # nothing was called: no failure of the model


def test_a_service_outside_the_farm_fails_for_good_naming_it(server: LlmServer) -> None:
    data = {k: v for k, v in step(server).items() if k != "base_url"}

    with pytest.raises(PermanentError, match="service 'models': no service registry"):
        run({**data, "service": "models"})
    assert server.requests == []


@pytest.mark.timeout(60)
def test_a_provider_trickling_its_answer_is_read_no_longer_than_the_step_lasts() -> None:
    # A byte every 0.05 s never trips the read timeout: read on past the step's deadline.
    provider = HttpService()
    try:
        provider.route("/v1/chat/completions", HttpReply(size=12_000, trickle_s=0.05))
        step_over = threading.Event()
        threading.Timer(1.5, step_over.set).start()
        ctx = AgentContext(run_id="r1", step_id="ask", attempt=1, is_cancelled=step_over.is_set)
        data = {
            "provider": "local",
            "base_url": provider.url("/v1"),
            "model": "model-a",
            "messages": [{"role": "user", "content": "why?"}],
            "timeout_s": 5,
        }

        with pytest.raises(TransientError, match="stopped reading the answer"):
            LlmAgent().execute(data, ctx)
    finally:
        provider.close()
