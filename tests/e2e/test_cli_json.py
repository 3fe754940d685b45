"""`--json` on every list and show command, in real `hive` processes: one JSON shape per kind
of object, with the field names of the Python client (the service views' ``to_json()``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hive import Client, service
from hive.settings import get_settings
from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess


def _json(*args: str, env: dict[str, str]) -> Any:
    result = run_hive(*args, "--json", env=env)
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout)


@pytest.mark.timeout(120)
def test_runs_show_and_list_json_give_the_run_object_of_the_python_client(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker("--concurrency", "1")
    submitted = run_hive(
        "submit", "echo-one", "--input", '{"text": "hi"}', "--tenant", "acme", "--wait",
        "--timeout", "60", env=env,
    )  # fmt: skip
    assert submitted.returncode == 0, describe(submitted)
    run_id = str(uuid.UUID(submitted.stdout.splitlines()[0]))
    later = Client().submit("echo-one", {"text": "later"})  # listed first
    later.wait(timeout=60)

    shown = _json("runs", "show", run_id, env=env)
    listed = _json("runs", "list", env=env)
    client_view = Client().get(run_id).to_json()

    assert shown == client_view
    assert [run["id"] for run in listed] == [str(later.id), run_id]
    for run in listed:
        assert list(run) == list(shown), "one set of keys, in one order"
        assert run["steps"] is None, "a listing reads no step: null, not []"
    assert {k: v for k, v in listed[1].items() if k != "steps"} == {
        k: v for k, v in shown.items() if k != "steps"
    }
    assert (shown["id"], shown["tenant"], shown["status"]) == (run_id, "acme", "succeeded")
    assert shown["pipeline_version"] == 1 and shown["output"] == {"echo": {"text": "hi"}}
    assert [(s["step_id"], s["status"]) for s in shown["steps"]] == [("echo", "succeeded")]
    filtered = _json("runs", "list", "--status", "succeeded", "--limit", "1", env=env)
    assert filtered == [listed[0]]


@pytest.mark.timeout(120)
def test_agents_and_pipelines_list_json_give_the_service_views(env: dict[str, str]) -> None:
    settings, caller = get_settings(), service.OPERATOR

    agents = _json("agents", "list", env=env)
    pipelines = _json("pipelines", "list", env=env)

    assert agents == [view.to_json() for view in service.list_agents(settings, caller)]
    echo = next(agent for agent in agents if agent["name"] == "echo")
    assert echo["options"]["queue"] == "hive.default"
    assert "text" in echo["input_schema"]["properties"]
    known = service.list_pipelines(settings, caller)
    assert [p["name"] for p in pipelines] == sorted(known)
    assert pipelines == [service.pipeline_view(known[p["name"]]).to_json() for p in pipelines]
    (echo_one,) = [p for p in pipelines if p["name"] == "echo-one"]
    assert echo_one["steps"] == [
        {
            "step_id": "echo",
            "agent": "echo",
            "needs": [],
            "input": {"text": "$input.text"},
            "options": echo["options"],
        }
    ]
    assert echo_one["version"] == 1 and echo_one["source"].endswith("echo-one.yaml")


@pytest.mark.timeout(120)
def test_replay_all_of_an_unknown_pipeline_exits_1_naming_the_known_ones(
    env: dict[str, str],
) -> None:
    result = run_hive("dlq", "replay", "--all", "--pipeline", "nope", env=env)

    assert result.returncode == 1, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("error: unknown pipeline 'nope'; known pipelines: ")
    assert "echo-one" in lines[0]
    assert "replayed" not in result.stdout + result.stderr
