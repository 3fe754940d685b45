"""Bounds at the edge: input nested too deep or too large, and submit arguments the database
cannot hold, are refused before anything is stored; an agent's output beyond the bounds fails
its step for good instead of being stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from hive import Client, InputError, RunFailed
from hive.errors import InvalidArgument
from tests.support.commands import describe, run_hive
from tests.support.db import attempts_of, scalar
from tests.support.processes import HiveProcess

pytestmark = pytest.mark.timeout(120)

OWNER_KEY = b"hive-test-owner"


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def assert_nothing_stored_or_sent(broker: redis.Redis) -> None:
    assert scalar("SELECT count(*) FROM runs") == 0
    assert scalar("SELECT count(*) FROM step_runs") == 0
    assert set(broker.keys()) <= {OWNER_KEY}, broker.keys()


def test_client_refuses_input_nested_500_levels_naming_the_field(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    with pytest.raises(InputError) as raised:
        Client().submit("merge-grows", {"text": "x", "extra": nested(500)})

    assert raised.value.problems == [
        "input.extra.a.a.a.a.<58 more>.a: nested deeper than 64 levels (HIVE_MAX_INPUT_DEPTH)"
    ]
    assert_nothing_stored_or_sent(redis_db[0])


def test_client_refuses_input_over_the_byte_limit_naming_the_field(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    with pytest.raises(InputError) as raised:
        Client().submit("doc-triage", {"text": "x" * 1_000_001})

    assert "input.text alone 1,000,003" in str(raised.value)
    assert "at most 1,000,000 (HIVE_MAX_INPUT_BYTES)" in str(raised.value)
    assert_nothing_stored_or_sent(redis_db[0])


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"tenant": "t" * 201}, "tenant is 201 characters long; at most 200"),
        ({"idempotency_key": "k" * 201}, "idempotency_key is 201 characters long; at most 200"),
        ({"deadline": float("nan")}, "deadline must be a positive number of seconds"),
        ({"deadline": float("inf")}, "not inf"),
    ],
    ids=["long-tenant", "long-idempotency-key", "nan-deadline", "infinite-deadline"],
)
def test_client_refuses_arguments_the_database_cannot_hold_naming_them(
    arguments: dict[str, Any],
    problem: str,
    clean_state: None,
    redis_db: tuple[redis.Redis, int],
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Client().submit("doc-triage", {"text": "hello"}, **arguments)

    assert problem in str(raised.value)
    assert_nothing_stored_or_sent(redis_db[0])


def test_cli_refuses_deep_input_and_a_long_tenant_in_one_line(
    env: dict[str, str], tmp_path: Path, redis_db: tuple[redis.Redis, int]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps({"text": "x", "extra": nested(500)}))
    refused = {
        "HIVE_MAX_INPUT_DEPTH": run_hive("submit", "merge-grows", "--input", f"@{deep}", env=env),
        "tenant is 201 characters": run_hive(
            "submit", "doc-triage", "--input", '{"text": "x"}', "--tenant", "t" * 201, env=env
        ),
    }

    for needle, result in refused.items():
        assert result.returncode == 1, describe(result)
        assert "Traceback" not in result.stderr, describe(result)
        assert len(result.stderr.strip().splitlines()) == 1, describe(result)
        assert needle in result.stderr, describe(result)
    assert_nothing_stored_or_sent(redis_db[0])


@pytest.mark.parametrize(
    ("run_input", "problem"),
    [
        ({"text": "x", "extra": nested(63)}, "nested deeper than 64 levels"),
        ({"text": "x" * 600, "extra": 1}, "at most 1,000 (HIVE_MAX_INPUT_BYTES)"),
    ],
    ids=["too-deep", "too-large"],
)
def test_agent_output_beyond_the_bounds_fails_the_step_for_good(
    start_worker: Callable[..., HiveProcess], run_input: dict[str, Any], problem: str
) -> None:
    # The input is within the bounds (the producer's are the defaults); merge's output is not.
    start_worker("--concurrency", "2", extra_env={"HIVE_MAX_INPUT_BYTES": "1000"})

    run = Client().submit("merge-grows", run_input)
    with pytest.raises(RunFailed) as raised:
        run.wait(timeout=60)

    assert raised.value.step_id == "both"
    error = raised.value.error
    assert error["type"] == "invalid_output"
    assert "output.merged" in error["message"]
    assert problem in error["message"]
    # A permanent failure: merge's three retries are not spent on it.
    assert [(a.attempt, a.outcome) for a in attempts_of(str(run.id), "both")] == [(1, "failed")]
    assert scalar("SELECT output FROM step_runs WHERE step_id = 'both'") is None


def test_dlq_replay_refuses_an_edited_input_over_the_byte_limit(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker("--concurrency", "2")
    run = Client().submit("fault-dlq", {"times": 50})
    with pytest.raises(RunFailed):
        run.wait(timeout=60)
    edited = json.dumps({"times": 0, "message": "m" * 2000})

    result = run_hive(
        "dlq", "replay", str(run.id), "--input", edited,
        env={**env, "HIVE_MAX_INPUT_BYTES": "1000"},
    )  # fmt: skip

    assert result.returncode == 1, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert (
        "the new input of step 'flaky': input: 2,024 bytes of JSON (input.message alone 2,002)"
        in result.stderr
    )
    assert "HIVE_MAX_INPUT_BYTES" in result.stderr
    assert scalar("SELECT status FROM runs") == "failed", "a refused replay changes nothing"
    assert scalar("SELECT input_template FROM step_runs WHERE step_id = 'flaky'") == {
        "times": "$input.times"
    }
