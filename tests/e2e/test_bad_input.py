"""Bad input is refused at the edge: a clear error naming the field, nothing stored in
PostgreSQL, nothing sent to Redis."""

from __future__ import annotations

import json
import subprocess

import pytest
import redis

from hive import Client, InputError, UnknownPipeline
from tests.support.commands import describe, run_hive
from tests.support.db import scalar

OWNER_KEY = b"hive-test-owner"


def _assert_nothing_stored_or_sent(broker: redis.Redis) -> None:
    assert scalar("SELECT count(*) FROM runs") == 0
    assert scalar("SELECT count(*) FROM step_runs") == 0
    assert broker.llen("hive.default") == 0
    assert list(broker.scan_iter(match="hive.default*")) == []
    assert set(broker.keys()) <= {OWNER_KEY}, broker.keys()


def _assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, describe(result)
    assert result.stdout == "", describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("error: "), describe(result)
    for needle in needles:
        assert needle in lines[0], describe(result)


@pytest.mark.parametrize(
    ("bad_input", "problem"),
    [
        ({"text": 5}, "input.text: 5 is not of type 'string'"),
        ({}, "'text' is a required property"),
        ({"text": ""}, "input.text"),
        ({"text": "a\x00b"}, "input.text: contains a NUL character"),
        ({"text": float("nan")}, "input.text: nan is not a JSON number"),
    ],
    ids=["wrong-type", "missing-field", "too-short", "nul-character", "nan"],
)
@pytest.mark.timeout(90)
def test_client_refuses_bad_input_naming_the_field_and_stores_and_sends_nothing(
    bad_input: dict[str, object],
    problem: str,
    clean_state: None,
    redis_db: tuple[redis.Redis, int],
) -> None:
    with pytest.raises(InputError) as raised:
        Client().submit("doc-triage", bad_input)

    assert raised.value.pipeline == "doc-triage"
    assert "text" in str(raised.value)
    assert problem in str(raised.value)
    _assert_nothing_stored_or_sent(redis_db[0])


@pytest.mark.timeout(90)
def test_client_refuses_an_unknown_pipeline_listing_the_known_ones(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    with pytest.raises(UnknownPipeline) as raised:
        Client().submit("no-such-pipeline", {"text": "x"})

    assert raised.value.name == "no-such-pipeline"
    assert "doc-triage" in raised.value.known
    assert "no-such-pipeline" in str(raised.value)
    assert "doc-triage" in str(raised.value)
    _assert_nothing_stored_or_sent(redis_db[0])


@pytest.mark.parametrize(
    ("given", "needles"),
    [
        (json.dumps({"text": 5}), ["input.text", "doc-triage"]),
        (json.dumps({"txt": "typo"}), ["'text' is a required property"]),
        ('{"text": ', ["--input", "not valid JSON"]),
        ('{"text": "a\\u0000b"}', ["input.text", "NUL character"]),
        ("@/nonexistent/doc.json", ["--input", "/nonexistent/doc.json"]),
    ],
    ids=["wrong-type", "missing-field", "malformed-json", "nul-character", "missing-file"],
)
@pytest.mark.timeout(60)
def test_cli_submit_with_bad_input_prints_one_error_line_and_stores_nothing(
    given: str,
    needles: list[str],
    env: dict[str, str],
    redis_db: tuple[redis.Redis, int],
) -> None:
    result = run_hive("submit", "doc-triage", "--input", given, "--wait", env=env)

    _assert_one_error_line(result, *needles)
    _assert_nothing_stored_or_sent(redis_db[0])


@pytest.mark.timeout(60)
def test_cli_submit_to_an_unknown_pipeline_prints_one_error_line_listing_the_known_ones(
    env: dict[str, str], redis_db: tuple[redis.Redis, int]
) -> None:
    result = run_hive("submit", "no-such-pipeline", "--input", '{"text": "x"}', env=env)

    _assert_one_error_line(result, "no-such-pipeline", "doc-triage")
    _assert_nothing_stored_or_sent(redis_db[0])


@pytest.mark.timeout(90)
def test_a_valid_submit_without_a_worker_leaves_one_message_in_the_queue(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    """The control for the checks above: a message that is sent is seen where they look."""
    broker = redis_db[0]

    Client().submit("echo-one", {"text": "x"})

    assert scalar("SELECT count(*) FROM runs") == 1
    queues = list(broker.scan_iter(match="hive.default*"))
    assert len(queues) == 1, queues
    assert broker.llen(queues[0]) == 1
