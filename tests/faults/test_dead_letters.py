"""Dead letters: listed, shown, and replayed from the failed step with fresh retries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

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


def _fail_past_deadline(client: Client, times: int) -> str:
    """A run of ``fault-dlq`` failed (``times`` attempts of its flaky step fail) and then
    past its deadline: a failed run that an admin comes back to too late."""
    run = client.submit("fault-dlq", {"times": times}, deadline=300)
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    db.execute("UPDATE runs SET deadline_at = now() - interval '1 second' WHERE id = :id",
               id=str(run.id))  # fmt: skip
    return str(run.id)


def _deadline_in(run_id: str) -> float:
    """Seconds from PostgreSQL's now() to the run's deadline."""
    return float(db.scalar(
        "SELECT extract(epoch FROM deadline_at - now()) FROM runs WHERE id = :id", id=run_id
    ))  # fmt: skip


def test_replay_refuses_a_run_past_its_deadline_naming_the_option_and_keeps_its_dead_letter(
    hive_env, start_worker
) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "1")
    client = Client()
    run_id = _fail_past_deadline(client, times=50)

    # Its steps could never be claimed: recovery would expire the run, its dead letter
    # already marked replayed, so the failure would leave the dead letters unseen.
    with pytest.raises(ReplayError, match=r"deadline passed at .*deadline= in the Python client"):
        client.replay(run_id, {"times": 0})
    refused = _hive(env, "dlq", "replay", run_id)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "deadline passed at" in refused.stderr and "--deadline" in refused.stderr
    assert list(service.replay_failed_runs(get_settings(), service.OPERATOR, "fault-dlq")) == []
    assert db.run_status(run_id) == "failed"
    assert [str(letter.run_id) for letter in client.dead_letters()] == [run_id]


def test_replay_with_a_new_deadline_reopens_a_run_past_its_deadline_and_it_finishes(
    hive_env, start_worker
) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "2")
    client = Client()
    by_cli, by_client = (_fail_past_deadline(client, times=2) for _ in range(2))

    replayed = _hive(env, "dlq", "replay", by_cli, "--deadline", "600")
    assert replayed.returncode == 0, replayed.stderr
    # The deadline counts from the replay, in PostgreSQL's time.
    assert 590 < _deadline_in(by_cli) <= 600
    assert client.replay(by_client, deadline=1200.5) == ["flaky", "last"]
    assert 1190 < _deadline_in(by_client) <= 1200.5

    for run_id in (by_cli, by_client):
        assert client.run(run_id).wait(timeout=30) == {"last": {"text": "done"}}
        assert db.steps_of(run_id)["flaky"].attempt == 3  # two before the replay, one after
    assert client.dead_letters() == []
    (event,) = db.rows("SELECT detail FROM events WHERE kind = 'replay' AND run_id = :id",
                       id=by_client)  # fmt: skip
    deadline_at = db.scalar("SELECT deadline_at FROM runs WHERE id = :id", id=by_client)
    assert datetime.fromisoformat(event.detail["deadline_at"]) == deadline_at


def test_replay_keeps_the_deadline_of_a_run_not_past_it_unless_given_a_new_one(
    hive_env, start_worker
) -> None:
    start_worker("--concurrency", "1")
    client = Client()
    run = client.submit("fault-dlq", {"times": 50}, deadline=300)
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    deadline_at = db.scalar("SELECT deadline_at FROM runs WHERE id = :id", id=str(run.id))

    client.replay(run.id)
    with pytest.raises(RunFailed):
        run.wait(timeout=30)

    assert db.scalar("SELECT deadline_at FROM runs WHERE id = :id", id=str(run.id)) == deadline_at


def test_replay_all_with_a_new_deadline_replays_the_runs_past_theirs_too(
    hive_env, start_worker
) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "2")
    client = Client()
    late = _fail_past_deadline(client, times=2)
    in_time = client.submit("fault-dlq", {"times": 2}, deadline=300)
    with pytest.raises(RunFailed):
        in_time.wait(timeout=30)

    done = _hive(env, "dlq", "replay", "--all", "--pipeline", "fault-dlq", "--deadline", "900")

    assert done.returncode == 0, done.stderr
    assert f"{late} replayed" in done.stdout and f"{in_time.id} replayed" in done.stdout
    assert "2 runs replayed" in done.stderr
    for run_id in (late, str(in_time.id)):
        assert client.run(run_id).wait(timeout=30) == {"last": {"text": "done"}}
        assert 880 < _deadline_in(run_id) <= 900, "every run replayed gets the new deadline"


def test_replay_refuses_a_run_that_did_not_fail(hive_env, start_worker) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "1")
    run = Client().submit("fault-chain3", {"text": "fine"})
    run.wait(timeout=30)
    done = _hive(env, "dlq", "replay", str(run.id))
    assert done.returncode == 1
    assert "not a failed run" in done.stderr


def test_replay_all_without_a_deadline_says_how_many_runs_past_theirs_it_left_out(
    hive_env, start_worker
) -> None:
    env = {**os.environ, **hive_env}
    start_worker("--concurrency", "2")
    late = _fail_past_deadline(Client(), times=50)

    done = _hive(env, "dlq", "replay", "--all", "--pipeline", "fault-dlq")

    assert done.returncode == 0, done.stderr
    assert "0 runs replayed" in done.stderr
    assert "1 run past the deadline left out: replay it with --deadline" in done.stderr
    assert db.scalar("SELECT status FROM runs WHERE id = :id", id=late) == "failed"
