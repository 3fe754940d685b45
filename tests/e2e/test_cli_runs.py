"""Submitting and inspecting runs through the `hive` command, against a real worker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from hive import Client
from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess

DOCUMENT = {"text": "Ping ops@example.org or +1 415 555 0199. The release went smoothly."}
STEPS = ["redact", "keywords", "summarize", "sentiment", "report"]


def _submitted(stdout: str) -> tuple[str, str]:
    """(run id from the first line, the rest) of `hive submit --wait` output."""
    first, _, rest = stdout.partition("\n")
    return str(uuid.UUID(first.strip())), rest


@pytest.mark.timeout(180)
def test_cli_submit_with_wait_prints_the_run_id_then_its_output_and_runs_commands_show_it(
    start_worker: Callable[..., HiveProcess], env: dict[str, str], tmp_path: Path
) -> None:
    start_worker("--concurrency", "2")

    inline = run_hive(
        "submit", "doc-triage", "--input", json.dumps(DOCUMENT), "--wait", "--timeout", "60",
        env=env,
    )  # fmt: skip
    assert inline.returncode == 0, describe(inline)
    run_id, rest = _submitted(inline.stdout)
    output = json.loads(rest)
    assert set(output["merged"]) == {"keywords", "summarize", "sentiment"}
    assert "ops@example.org" not in rest
    assert "555 0199" not in rest

    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"text": "Second document, read from a file."}))
    from_file = run_hive(
        "submit", "doc-triage", "--input", f"@{document}", "--wait", "--timeout", "60", env=env
    )
    assert from_file.returncode == 0, describe(from_file)
    file_run_id, file_rest = _submitted(from_file.stdout)
    assert set(json.loads(file_rest)["merged"]) == {"keywords", "summarize", "sentiment"}

    shown = run_hive("runs", "show", run_id, env=env)
    assert shown.returncode == 0, describe(shown)
    assert run_id in shown.stdout
    assert "doc-triage" in shown.stdout
    assert "succeeded" in shown.stdout
    for step in STEPS:
        assert step in shown.stdout

    shown_json = run_hive("runs", "show", run_id, "--json", env=env)
    assert shown_json.returncode == 0, describe(shown_json)
    data = json.loads(shown_json.stdout)
    assert data["id"] == run_id
    assert data["status"] == "succeeded"
    assert data["output"] == output
    assert [(s["step_id"], s["status"], s["attempts"]) for s in data["steps"]] == [
        (step, "succeeded", 1) for step in STEPS
    ]

    listed = run_hive("runs", "list", "--status", "succeeded", env=env)
    assert listed.returncode == 0, describe(listed)
    assert run_id in listed.stdout
    assert file_run_id in listed.stdout


@pytest.mark.timeout(120)
def test_cli_submit_with_wait_exits_1_with_one_error_line_when_the_run_fails(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker("--concurrency", "2")

    failing = run_hive(
        "submit", "fails-midway", "--input", '{"text": "x"}', "--wait", "--timeout", "60",
        env=env,
    )  # fmt: skip
    assert failing.returncode == 1, describe(failing)
    failed_id, failed_rest = _submitted(failing.stdout)
    assert json.loads(failed_rest)["status"] == "failed"
    error_lines = failing.stderr.strip().splitlines()
    assert len(error_lines) == 1, describe(failing)
    assert error_lines[0].startswith("error: ")
    assert failed_id in error_lines[0]
    # That the line also names the failed step is checked in test_failures.py.
    assert "Traceback" not in failing.stderr

    failed_list = run_hive("runs", "list", "--status", "failed", env=env)
    assert failed_id in failed_list.stdout
    succeeded_list = run_hive("runs", "list", "--status", "succeeded", env=env)
    assert failed_id not in succeeded_list.stdout


@pytest.mark.timeout(120)
def test_ctrl_c_during_submit_wait_says_the_run_goes_on(env: dict[str, str]) -> None:
    """Ctrl-C stops the waiting, not the run: click's bare "Aborted!" read as if the run
    had been stopped."""
    import signal
    import subprocess

    from tests.support.processes import HIVE

    # No worker: the run waits in its queue, and so does the command.
    waiting = subprocess.Popen(
        [*HIVE, "submit", "echo-one", "--input", '{"text": "x"}', "--wait"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert waiting.stdout is not None
        run_id = str(uuid.UUID(waiting.stdout.readline().strip()))
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()

    assert waiting.returncode == 130, (out, err)
    assert err.strip().splitlines() == [
        f"stopped waiting; run {run_id} goes on (`hive runs cancel {run_id}` stops it)"
    ], err
    assert Client().get(run_id).status == "queued"
