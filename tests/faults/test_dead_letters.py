"""Dead letters: listed, shown, and replayed from the failed step with fresh retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hive import Client, service
from hive.errors import ReplayError, RunFailed
from hive.settings import get_settings
from tests.support import db

pytestmark = pytest.mark.timeout(120)


def _hive(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hive.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _fail_one(client: Client) -> str:
    run = client.submit("fault-dlq", {"times": 50})
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    return str(run.id)


def test_dead_letters_are_listed_shown_and_replayed_from_the_failed_step(
    hive_env, start_worker
) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "2")
    client = Client()
    run_id = _fail_one(client)
    first_done = db.steps_of(run_id)["first"].finished_at

    listed = _hive(env, "dlq", "list", "--pipeline", "fault-dlq", "--since", "1h")
    assert listed.returncode == 0 and run_id in listed.stdout and "flaky" in listed.stdout
    listed_json = json.loads(_hive(env, "dlq", "list", "--json").stdout)
    assert listed_json == [letter.to_json() for letter in service.list_dead_letters(
        get_settings(), service.OPERATOR
    )]  # fmt: skip
    shown = json.loads(_hive(env, "dlq", "show", run_id, "--json").stdout)
    (letter,) = shown["dead_letters"]
    assert letter == listed_json[0], "one JSON shape for a dead letter, listed or shown"
    assert (letter["run_id"], letter["step_id"], letter["attempts"]) == (run_id, "flaky", 2)
    assert letter["error"]["type"] == "RetryableError" and letter["error"]["traceback"]
    assert letter["input"] == {"times": 50}
    # The run as `runs show --json` and the Python client give it, steps and all.
    assert shown["run"] == client.get(run_id).to_json()
    assert shown["run"]["pipeline_version"] == 1 and "version" not in shown["run"]
    assert [(s["step_id"], s["status"]) for s in shown["run"]["steps"]] == [
        ("first", "succeeded"), ("flaky", "failed"), ("last", "skipped"),
    ]  # fmt: skip
    text = _hive(env, "dlq", "show", run_id)
    assert text.returncode == 0, text.stderr
    assert "step flaky" in text.stdout and "attempts 2" in text.stdout
    assert "RetryableError" in text.stdout and "Traceback" in text.stdout

    bad = _hive(env, "dlq", "replay", run_id, "--input", '{"times": "many"}')
    assert bad.returncode == 1 and "input.times" in bad.stderr and "Traceback" not in bad.stderr
    assert db.run_status(run_id) == "failed", "a refused replay changes nothing"

    replayed = _hive(env, "dlq", "replay", run_id, "--input", '{"times": 0}')
    assert replayed.returncode == 0, replayed.stderr
    assert client.run(run_id).wait(timeout=30) == {"last": {"text": "done"}}
    steps = db.steps_of(run_id)
    assert steps["first"].finished_at == first_done, "completed steps are not run again"
    assert steps["flaky"].attempt == 3  # two before the replay, one after
    assert steps["flaky"].input == {"times": 0}
    assert _hive(env, "dlq", "list").stdout.count(run_id) == 0


def test_replay_all_gives_every_failed_run_of_a_pipeline_fresh_retries(
    hive_env, start_worker
) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "2")
    client = Client()
    run_ids = [_fail_one(client) for _ in range(3)]

    done = _hive(env, "dlq", "replay", "--all", "--pipeline", "fault-dlq")
    assert done.returncode == 0, done.stderr
    for run_id in run_ids:
        with pytest.raises(RunFailed):  # still failing: times 50 > fresh retries
            client.run(run_id).wait(timeout=30)
        assert db.steps_of(run_id)["flaky"].attempt == 4  # 2 + 2 fresh
    letters = db.rows("SELECT run_id, replayed_at FROM dead_letters ORDER BY created_at")
    assert len(letters) == 6 and sum(r.replayed_at is None for r in letters) == 3


def test_replay_all_passes_over_a_run_replayed_by_someone_else_meanwhile(
    hive_env, start_worker
) -> None:
    start_worker("--concurrency", "2")
    client = Client()
    first, second = (_fail_one(client) for _ in range(2))
    # The failed runs are listed when the replay of them all starts; then another admin
    # replays the first one before its turn comes.
    replaying = service.replay_failed_runs(get_settings(), service.OPERATOR, "fault-dlq")
    client.replay(first, {"times": 0})

    done = list(replaying)

    assert [(str(run), sent) for run, sent in done] == [(second, ["flaky", "last"])]
    assert client.run(first).wait(timeout=30) == {"last": {"text": "done"}}
    assert db.steps_of(first)["flaky"].attempt == 3, "replayed once, not twice"


def test_replay_refuses_a_run_past_its_deadline_and_keeps_its_dead_letter(
    hive_env, start_worker
) -> None:
    start_worker("--concurrency", "1")
    client = Client()
    run = client.submit("fault-dlq", {"times": 50}, deadline=300)
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    db.execute("UPDATE runs SET deadline_at = now() - interval '1 second' WHERE id = :id",
               id=str(run.id))  # fmt: skip

    # Its steps could never be claimed: recovery would expire the run, its dead letter
    # already marked replayed, so the failure would leave the dead letters unseen.
    with pytest.raises(ReplayError, match="deadline"):
        client.replay(run.id, {"times": 0})
    assert list(service.replay_failed_runs(get_settings(), service.OPERATOR, "fault-dlq")) == []
    assert db.run_status(run.id) == "failed"
    assert [letter.run_id for letter in client.dead_letters()] == [run.id]


def test_replay_refuses_a_run_that_did_not_fail(hive_env, start_worker) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "1")
    run = Client().submit("fault-chain3", {"text": "fine"})
    run.wait(timeout=30)
    done = _hive(env, "dlq", "replay", str(run.id))
    assert done.returncode == 1
    assert "not a failed run" in done.stderr
