"""doc-triage end to end: a producer in its own process submits through the client, a real
worker runs the five steps, and PostgreSQL records every one of them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from hive import Client
from tests.support.commands import describe, run_python
from tests.support.processes import HiveProcess

EMAIL = "jane.doe@example.com"
PHONE = "415-555-0100"
DOCUMENT = (
    f"Write to {EMAIL} or call {PHONE} about the order. "
    "The new dashboard is great and the support team was helpful. "
    "Delivery was late, but the product works well."
)

PRODUCER = """
import json, sys
from hive import Client

run = Client().submit("doc-triage", json.loads(sys.argv[1]))
print(run.id)
print(json.dumps(run.wait(timeout=60)))
"""

STEPS = ["redact", "keywords", "summarize", "sentiment", "report"]


@pytest.mark.timeout(120)
def test_doc_triage_runs_end_to_end_from_a_separate_producer_process(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker("--concurrency", "2")

    result = run_python(PRODUCER, json.dumps({"text": DOCUMENT}), env=env)

    assert result.returncode == 0, describe(result)
    run_id, output_line = result.stdout.strip().splitlines()
    output = json.loads(output_line)
    merged = output["merged"]
    assert set(merged) == {"keywords", "summarize", "sentiment"}
    assert merged["keywords"]["keywords"], merged
    assert merged["summarize"]["summary"], merged
    assert "label" in merged["sentiment"], merged
    assert "[EMAIL]" in merged["summarize"]["summary"]
    assert "[PHONE]" in merged["summarize"]["summary"]

    view = Client().get(run_id)
    assert view.status == "succeeded"
    assert view.output == output
    assert [(s.step_id, s.status, s.attempts) for s in view.steps] == [
        (step, "succeeded", 1) for step in STEPS
    ]
    # Only the redact step ever saw the personal data; no output holds it.
    recorded = json.dumps([view.output, *[(s.output, s.error) for s in view.steps]])
    downstream_inputs = json.dumps([s.input for s in view.steps if s.step_id != "redact"])
    for secret in (EMAIL, PHONE):
        assert secret not in output_line
        assert secret not in recorded
        assert secret not in downstream_inputs
    assert all(s.started_at and s.finished_at for s in view.steps)
