"""The shipped ``partner-brief`` pipeline end to end in a real ``--pool threads`` worker: an
``http`` step calls the service ``partner`` by name, ``pii_redact`` cleans its notes, and
an ``llm`` step asks the model behind the service ``llm-gateway`` (the OpenAI-compatible
test server) for a brief that fits its output schema; both keys from the worker's
environment, neither stored."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from hive import Client
from tests.support import db
from tests.support.http_service import HttpService, Reply
from tests.support.llm_server import LlmServer
from tests.support.llm_server import Reply as LlmReply
from tests.support.processes import HiveProcess

SECRETS = {"PARTNER_API_KEY": "key-partner-4e1b7d20c9", "LLM_GATEWAY_KEY": "sk-gw-83c5f0a1d6"}
NOTES = "Unhappy about the March invoice; call back on +1 415 555 0100 or ada@example.com."


@pytest.fixture
def partner() -> Iterator[HttpService]:
    server = HttpService()
    server.route(
        "/api/v1/customers",
        lambda request: Reply(json={"id": request.query["id"], "name": "Ada", "notes": NOTES}),
    )
    yield server
    server.close()


@pytest.mark.timeout(120)
def test_partner_brief_looks_the_customer_up_by_service_name_and_briefs_it_with_the_llm(
    start_worker: Callable[..., HiveProcess], partner: HttpService, llm: LlmServer
) -> None:
    # `llm` emptied the registry and registered its server as llm-test; the pipeline names
    # its own services.
    services = Client().services
    services.register("partner", partner.url("/api"))
    services.register("llm-gateway", llm.url)
    llm.script("gpt-4o-mini", LlmReply.json({"brief": "Ada is upset.", "risk": "medium"}))
    start_worker("--pool", "threads", "--concurrency", "4", extra_env=SECRETS)

    run = Client().submit("partner-brief", {"customer_id": "c-42"})
    output = run.wait(timeout=60)

    assert output["customer"] == "c-42"
    assert (output["brief"], output["risk"]) == ("Ada is upset.", "medium")
    assert output["model"] == "gpt-4o-mini"
    (lookup,) = partner.requests
    assert lookup.query == {"id": "c-42"}
    assert lookup.headers["x-api-key"] == SECRETS["PARTNER_API_KEY"]
    (asked,) = llm.requests_for("gpt-4o-mini")
    assert asked.headers["Authorization"] == f"Bearer {SECRETS['LLM_GATEWAY_KEY']}"
    prompt = json.dumps(asked.messages)
    assert "[EMAIL]" in prompt and "[PHONE]" in prompt
    assert "ada@example.com" not in prompt, "the notes are redacted before the model sees them"
    stored = json.dumps([r._asdict() for r in db.rows("SELECT * FROM step_runs")], default=str)
    assert not any(secret in stored for secret in SECRETS.values())
