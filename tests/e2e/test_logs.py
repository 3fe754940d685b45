"""Logs that carry ids: with ``HIVE_LOG_FORMAT=json`` every record of a real worker is one
JSON object, and every record written while a step runs (the agent's own, a library's,
Celery's) carries the run, step, attempt, task, agent, pipeline, tenant and trace id."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hive import Client
from tests.support.commands import describe, run_hive, run_python
from tests.support.processes import HiveProcess, wait_until

STEP_FIELDS = ("run_id", "step_id", "attempt", "task_id", "agent", "pipeline", "tenant", "trace_id")
# What a step's message itself carries: all the worker's main process knows of it.
MESSAGE_FIELDS = ("run_id", "step_id", "attempt", "task_id", "agent")
# Only the DEBUG record holds it: payloads never appear above DEBUG.
PAYLOAD = "payload-7f3c-never-above-debug"
# A text-format record, which must not appear when JSON was asked for.
TEXT_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")

_PRODUCER = """
import sys
from hive import Client
from hive.logs import configure_logging
configure_logging()
print(Client(tenant="acme").submit("logged", {"text": sys.argv[1]}).id)
"""


def _records(text: str) -> list[dict[str, Any]]:
    """Every JSON record in a process's output; fails on a record in any other form."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        else:
            assert not TEXT_RECORD.match(line), f"a record that is not JSON: {line!r}"
    return records


@pytest.mark.parametrize("pool", ["prefork", "threads"])
@pytest.mark.timeout(180)
def test_every_record_of_a_step_carries_the_run_step_and_trace_ids_in_json(
    pool: str, start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    json_env = {**env, "HIVE_LOG_FORMAT": "json", "HIVE_LOG_LEVEL": "INFO"}
    # Two pool processes or threads: the two chatty steps run side by side.
    worker = start_worker("--concurrency", "2", "--pool", pool, extra_env=json_env)

    produced = run_python(_PRODUCER, PAYLOAD, env=json_env)
    assert produced.returncode == 0, describe(produced)
    run_id = str(uuid.UUID(produced.stdout.strip()))
    output = Client().run(run_id).wait(timeout=60)

    shown = run_hive("runs", "show", run_id, "--json", env=env)
    assert shown.returncode == 0, describe(shown)
    trace_id = json.loads(shown.stdout)["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32
    assert Client().get(run_id).trace_id == trace_id
    # The agent saw it on its context (ctx.trace_id), to pass on to what it calls.
    assert output["left"] == {"text": PAYLOAD, "trace_id": trace_id}

    # The producer's record of the submit.
    submitted = [r for r in _records(produced.stderr) if r["message"] == "run submitted"]
    assert len(submitted) == 1, produced.stderr
    assert {k: submitted[0].get(k) for k in ("run_id", "pipeline", "tenant", "trace_id")} == {
        "run_id": run_id,
        "pipeline": "logged",
        "tenant": "acme",
        "trace_id": trace_id,
    }

    records = _records(worker.log())
    mine = [r for r in records if r.get("run_id") == run_id]
    # Celery's "received", in the main process as each message arrives: the message's ids.
    received = [r for r in mine if r["logger"] == "celery.worker.strategy"]
    assert sorted((r["step_id"], r["agent"], r["attempt"]) for r in received) == [
        ("last", "echo", 1),
        ("left", "chatty", 1),
        ("right", "chatty", 1),
    ], mine
    for record in received:
        assert set(MESSAGE_FIELDS) <= record.keys(), record
        assert f"hive.step.{record['agent']}[{record['task_id']}] received" in record["message"]
    expected = {"run_id": run_id, "pipeline": "logged", "tenant": "acme", "trace_id": trace_id}
    for record in mine:
        if record not in received:
            assert {k: record.get(k) for k in expected} == expected, record
            assert set(STEP_FIELDS) <= record.keys(), record

    # The agent's records, through ctx.logger, a library's logger and the root logger, each
    # with the ids of the step that wrote it, though the two ran at once.
    by_logger: dict[str, list[dict[str, Any]]] = {}
    for record in mine:
        if record["message"].startswith(("chatty:", "chatty_sdk:")):
            assert record["message"].endswith(record["step_id"]), record
            assert record["agent"] == "chatty" and record["attempt"] == 1, record
            by_logger.setdefault(record["logger"], []).append(record)
    assert {name: len(found) for name, found in by_logger.items()} == {
        "hive.agent.chatty": 2,
        "chatty_sdk.client": 2,
        "root": 2,
    }, mine
    # Celery's own line for each step, under the agent's name.
    done = sorted(
        (r["step_id"], r["agent"])
        for r in mine
        if r["logger"] == "celery.app.trace" and "succeeded" in r["message"]
    )
    assert done == [("last", "echo"), ("left", "chatty"), ("right", "chatty")], mine
    assert all(
        "hive.step." + r["agent"] in r["message"] for r in mine if r["logger"] == "celery.app.trace"
    )
    if pool == "prefork":
        # A pool process writes only inside its steps here: every one of its records has them.
        in_pool = [r for r in records if r["process"] != "MainProcess"]
        assert in_pool, records
        assert all(set(STEP_FIELDS) <= r.keys() for r in in_pool), in_pool

    assert PAYLOAD not in worker.log()
    assert PAYLOAD not in produced.stderr


@pytest.mark.timeout(180)
def test_the_worker_main_process_records_about_a_step_carry_the_ids_of_its_message(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    """A pool process killed mid-step: the main process receives both attempts, sees the
    first one lost and records it; each of those records names the step it is about."""
    json_env = {**env, "HIVE_LOG_FORMAT": "json", "HIVE_LOG_LEVEL": "INFO"}
    worker = start_worker("--concurrency", "1", extra_env=json_env)

    run = Client().submit("fault-crash", {"times": 1})
    assert run.wait(timeout=90) == {"after": {"text": "survived"}}

    records = _records(worker.log())
    main = [r for r in records if r["process"] == "MainProcess"]
    received = [r for r in main if r["logger"] == "celery.worker.strategy"]
    assert sorted((r.get("step_id"), r.get("attempt"), r.get("agent")) for r in received) == [
        ("after", 1, "echo"),
        ("boom", 1, "crash"),
        ("boom", 2, "crash"),
    ], received
    task_ids = {r["task_id"]: r for r in received}
    assert len(task_ids) == 3
    lost_task = next(t for t, r in task_ids.items() if r["step_id"] == "boom" and r["attempt"] == 1)
    # Celery's record of the lost attempt and Hive's, both in the main process.
    lost = [r for r in main if "WorkerLostError" in r["message"] or "worker_lost" in r["message"]]
    assert {r["logger"] for r in lost} >= {"celery.worker.request", "hive.tasks.step"}, lost
    # Every main-process record that names one of the run's tasks carries that task's ids.
    about_steps = [r for r in main if any(t in r["message"] for t in task_ids)] + lost
    for record in about_steps:
        task_id = record.get("task_id")
        assert task_id in task_ids, record
        message = task_ids[task_id]
        assert {k: record.get(k) for k in MESSAGE_FIELDS} == {
            k: message[k] for k in MESSAGE_FIELDS
        }, record
        assert record["run_id"] == str(run.id), record
    assert all(r["task_id"] == lost_task for r in lost), lost


@pytest.mark.timeout(120)
def test_text_logs_show_the_ids_compactly(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    worker = start_worker("--concurrency", "1", extra_env={"HIVE_LOG_FORMAT": "text"})

    run = Client(tenant="acme").submit("logged", {"text": "hi"})
    run.wait(timeout=60)

    trace_id = Client().get(run.id).trace_id
    line = next(ln for ln in worker.log().splitlines() if "chatty_sdk: calling out for left" in ln)
    assert line.endswith(
        f"[run={run.id} step=left#1 agent=chatty pipeline=logged tenant=acme trace={trace_id}]"
    ), line
    shown = run_hive("runs", "show", str(run.id), env=env)
    assert f"  trace    {trace_id}" in shown.stdout.splitlines(), describe(shown)


@pytest.mark.timeout(120)
def test_a_maintenance_task_beat_sends_logs_with_its_task_name_and_id(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    env: dict[str, str],
) -> None:
    json_env = {**env, "HIVE_LOG_FORMAT": "json", "HIVE_RECOVERY_INTERVAL_S": "1"}
    worker = start_worker("--concurrency", "1", extra_env=json_env)
    start_beat(extra_env=json_env)

    def swept() -> list[dict[str, Any]]:
        return [
            r
            for r in _records(worker.log())
            if r["logger"] == "celery.app.trace" and "succeeded" in r["message"]
        ]

    wait_until(lambda: bool(swept()), 60, "beat's recovery to run on the worker")
    record = swept()[0]
    assert record["task"] == "hive.beat.recover_stalled_runs", record
    assert record["task_id"] in record["message"], record
    assert "run_id" not in record


@pytest.mark.timeout(120)
def test_a_maintenance_run_names_its_task_in_its_records(env: dict[str, str]) -> None:
    json_env = {**env, "HIVE_LOG_FORMAT": "json"}
    source = (
        "import logging\n"
        "from hive.logs import configure_logging\n"
        "from hive.beat.tasks import recover_now\n"
        "configure_logging('INFO')\n"
        "from hive.beat import lock\n"
        "with lock.held(lock.broker_redis(), 'recover', 30):\n"
        "    recover_now()\n"
    )

    done = run_python(source, env=json_env)

    assert done.returncode == 0, describe(done)
    skipped = [r for r in _records(done.stderr) if "already running" in r["message"]]
    assert [r.get("task") for r in skipped] == ["hive.beat.recover_stalled_runs"], done.stderr


@pytest.mark.timeout(120)
def test_worker_and_beat_print_no_celery_banner_when_logs_are_json(
    start_worker: Callable[..., HiveProcess], hive_env: dict[str, str], tmp_path: Path
) -> None:
    """Celery's start-up banners are printed, not logged: thirty lines of ASCII art among
    the JSON records a log shipper parses."""
    json_env = {"HIVE_LOG_FORMAT": "json", "HIVE_LOG_LEVEL": "INFO"}
    worker = start_worker("--concurrency", "1", extra_env=json_env)
    beat = HiveProcess(
        ["beat", "--schedule", str(tmp_path / "schedule")],
        {**os.environ, **hive_env, **json_env},
        tmp_path / "beat.log",
    )
    try:
        beat.wait_for_log("Scheduler: Sending due task", timeout_s=60)
    finally:
        beat.stop()

    for log in (worker.log(), beat.log()):
        _records(log)
        assert "[config]" not in log and "Configuration ->" not in log, log[:2000]
