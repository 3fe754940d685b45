"""A breaker open with ``on_open: escalate`` holds the steps that meet it for a person, with
real workers: the run shows ``awaiting_approval``; approved, the step runs (waiting for the
breaker as ``defer`` does while it is still open); rejected, it fails for good. Every
request and decision is an event."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hive import Client, RunFailed
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.partner import PartnerServer
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    server = PartnerServer()
    yield server
    server.close()


def _awaiting(run_id: Any) -> None:
    wait_until(
        lambda: db.steps_of(run_id)["call"].status == "awaiting_approval",
        60,
        "the step to await approval",
    )


def _approval_events(run_id: Any) -> list[tuple[str, dict[str, Any]]]:
    rows = db.rows(
        "SELECT kind, detail FROM events WHERE run_id = :r AND kind LIKE 'approval%' ORDER BY id",
        r=run_id,
    )
    return [(r.kind, r.detail) for r in rows]


def test_an_open_breaker_escalates_its_steps_until_a_person_approves_or_rejects_them(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    tmp_path: Path,
    partner: PartnerServer,
) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_text("breakers:\n  service:partner: {failures: 3, on_open: escalate}\n")
    env = {"HIVE_LIMITS_FILE": str(limits)}
    cli_env = {**os.environ, **hive_env, **env}
    start_worker("--concurrency", "2", extra_env=env)
    opened = run_hive("breakers", "open", "service:partner", env=cli_env)
    assert opened.returncode == 0, describe(opened)

    client = Client()
    waiting, rejected, later = (client.submit("callout", {"url": partner.url}) for _ in range(3))
    for run in (waiting, rejected, later):
        _awaiting(run.id)
        assert client.get(run.id).status == "awaiting_approval"
    assert partner.served() == 0
    listed = run_hive("approvals", "list", "--json", env=cli_env)
    assert listed.returncode == 0, describe(listed)
    pending = json.loads(listed.stdout)
    assert {p["run_id"] for p in pending} == {str(r.id) for r in (waiting, rejected, later)}
    assert {(p["source"], p["reason"]) for p in pending} == {
        ("breaker", "breaker service:partner is open (on_open: escalate)")
    }
    shown = run_hive("approvals", "show", str(waiting.id), "call", "--json", env=cli_env)
    assert json.loads(shown.stdout)["input"] == {"url": partner.url}, describe(shown)
    # The attempt that met the breaker was given back: no retry used, none counted.
    assert db.scalar("SELECT count(*) FROM step_attempts") == 0
    assert db.steps_of(waiting.id)["call"].attempt == 0

    # Approved while the breaker is still open: the step waits for it as `defer` does,
    # and is not held again.
    approved = run_hive("approvals", "approve", str(waiting.id), "call", "--by", "ann", env=cli_env)
    assert approved.returncode == 0, describe(approved)
    wait_until(lambda: db.steps_of(waiting.id)["call"].deferrals >= 1, 60, "the step to wait")
    assert db.steps_of(waiting.id)["call"].status != "awaiting_approval"
    assert partner.served() == 0

    # Rejected: the step fails for good, a dead letter; the call is never made.
    refused = run_hive(
        "approvals", "reject", str(rejected.id), "call", "--by", "bob", "--reason", "partner down",
        env=cli_env,
    )  # fmt: skip
    assert refused.returncode == 0, describe(refused)
    with pytest.raises(RunFailed) as failed:
        rejected.wait(timeout=60)
    assert failed.value.error["type"] == "approval_rejected"

    # The breaker closes: the approved step goes through; one approved after it runs at once.
    closed = run_hive("breakers", "close", "partner", env=cli_env)
    assert closed.returncode == 0, describe(closed)
    assert waiting.wait(timeout=60)["call"]["status"] == 200
    client.approvals.approve(later.id, "call")
    assert later.wait(timeout=60)["call"]["status"] == 200
    assert db.steps_of(later.id)["call"].deferrals == 0
    assert partner.served() == 2

    kinds = {
        run.id: [(kind, detail.get("source"), detail["by"]) for kind, detail in
                 _approval_events(run.id)]
        for run in (waiting, rejected, later)
    }  # fmt: skip
    assert kinds[waiting.id] == [
        ("approval_requested", "breaker", "hive"),
        ("approval_approved", None, "ann"),
    ]
    assert kinds[rejected.id] == [
        ("approval_requested", "breaker", "hive"),
        ("approval_rejected", None, "bob"),
    ]
    assert [k for k, _, _ in kinds[later.id]] == ["approval_requested", "approval_approved"]
