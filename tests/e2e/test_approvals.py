"""Human approvals with real workers and beat: a step with ``approval: required`` waits,
durably, until a person approves it (with its input or an edited one), rejects it, or its
timeout decides; every request and decision is an event with who and when."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import redis

from hive import Client, RunFailed
from hive.errors import ApprovalError, ApprovalNotFound, PermissionDenied
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.processes import HIVE, HiveProcess, wait_until

pytestmark = pytest.mark.timeout(180)


def _awaiting(run_id: Any, step_id: str, timeout_s: float = 30) -> None:
    wait_until(
        lambda: db.steps_of(run_id)[step_id].status == "awaiting_approval",
        timeout_s,
        f"step {step_id} to await approval",
    )


def _approval_events(run_id: Any) -> list[tuple[str, str, dict[str, Any]]]:
    rows = db.rows(
        "SELECT step_id, kind, detail FROM events WHERE run_id = :r AND kind LIKE 'approval%'"
        " ORDER BY id",
        r=run_id,
    )
    return [(r.step_id, r.kind, r.detail) for r in rows]


def _flush(redis_db: tuple[redis.Redis, int]) -> None:
    client, _ = redis_db
    owner = client.get("hive-test-owner")
    client.flushdb()
    if owner:
        client.set("hive-test-owner", owner, ex=3600)


def test_an_approval_holds_the_run_through_a_worker_restart_and_a_redis_flush_until_approved(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    env: dict[str, str],
    redis_db: tuple[redis.Redis, int],
) -> None:
    fast = {"HIVE_RECOVERY_INTERVAL_S": "1", "HIVE_PUBLISH_GRACE_S": "2"}
    worker = start_worker(extra_env=fast)
    start_beat(extra_env=fast)
    client = Client()
    run = client.submit("approval-echo", {"text": "ship it"})
    _awaiting(run.id, "send")

    view = run.view()
    assert view.status == "awaiting_approval"
    assert {s.step_id: s.status for s in view.steps} == {
        "prepare": "succeeded", "send": "awaiting_approval", "after": "pending",
    }  # fmt: skip
    listed = run_hive("approvals", "list", "--json", env=env)
    assert listed.returncode == 0, describe(listed)
    [pending] = json.loads(listed.stdout)
    assert (pending["run_id"], pending["step_id"], pending["pipeline"]) == (
        str(run.id),
        "send",
        "approval-echo",
    )
    assert pending["status"] == "pending" and pending["reason"] == "approval: required"
    assert pending["input"] is None  # a listing never shows the input (personal data)
    shown = run_hive("approvals", "show", str(run.id), "send", "--json", env=env)
    assert json.loads(shown.stdout)["input"] == {"text": "ship it"}, describe(shown)
    for status, expected in (("awaiting_approval", [str(run.id)]), ("running", [])):
        listed_runs = run_hive("runs", "list", "--status", status, "--json", env=env)
        assert [r["id"] for r in json.loads(listed_runs.stdout)] == expected, status
    figures = _exported()
    assert 'hive_approvals_pending{pipeline="approval-echo"} 1.0' in figures
    assert 'hive_approvals_oldest_pending_seconds{pipeline="approval-echo"}' in figures

    # Nothing in memory or in Redis holds the approval: a restart and a flush change nothing.
    worker.stop()
    _flush(redis_db)
    start_worker(extra_env=fast, name="w-again")
    flushed_at = db.scalar("SELECT now()")
    wait_until(
        lambda: (
            db.scalar(
                "SELECT count(*) FROM events WHERE kind = 'maintenance' AND created_at > :t "
                "AND detail->>'task' = 'recover'",
                t=flushed_at,
            )
            >= 3
        ),
        60,
        "three recovery sweeps after the flush",
    )
    assert db.scalar("SELECT count(*) FROM events WHERE kind = 'broker_reset'") >= 1
    steps = db.steps_of(run.id)
    assert (steps["send"].status, steps["send"].attempt, steps["send"].enqueued_at) == (
        "awaiting_approval",
        0,
        None,
    )
    assert client.get(run.id).status == "awaiting_approval"
    # Nothing sent the held step again after the flush. (Before it, on a loaded machine, a
    # message taken but not yet claimed past HIVE_PUBLISH_GRACE_S can be sent once more,
    # its copy dropped at its claim: recovery's doing, not the approval's.)
    resent = db.rows(
        "SELECT detail FROM events WHERE kind = 'redispatch' AND run_id = :r AND created_at > :t",
        r=run.id,
        t=flushed_at,
    )
    assert not resent, resent

    approved = run_hive("approvals", "approve", str(run.id), "send", "--by", "alice", env=env)
    assert approved.returncode == 0, describe(approved)
    assert run.wait(timeout=30) == {"after": {"text": "ship it"}}

    events = _approval_events(run.id)
    assert [(s, k, d["by"]) for s, k, d in events] == [
        ("send", "approval_requested", "hive"),
        ("send", "approval_approved", "alice"),
    ]
    decided = client.approvals.get(run.id, "send")
    assert (decided.status, decided.decided_by) == ("approved", "alice")
    assert [e.kind for e in decided.history or []] == ["approval_requested", "approval_approved"]
    assert decided.decided_at is not None and decided.decided_at >= decided.requested_at
    assert client.approvals.list() == []
    assert "hive_approvals_pending{" not in _exported()


def _exported() -> str:
    """What `hive exporter` would serve now, read from this session's PostgreSQL."""
    from prometheus_client import generate_latest

    from hive.exporter import farm_registry
    from hive.settings import get_settings

    return generate_latest(farm_registry(get_settings())).decode()


def test_an_edited_input_is_checked_by_field_and_the_step_runs_with_it(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker()
    client = Client(identity="carol")
    run = client.submit("approval-echo", {"text": "draft"})
    _awaiting(run.id, "send")

    bad = run_hive("approvals", "approve", str(run.id), "send", "--input", '{"txt": "x"}', env=env)
    assert bad.returncode == 1, describe(bad)
    assert "input.text: Field required" in bad.stderr
    assert "input.txt: Extra inputs are not permitted" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert db.steps_of(run.id)["send"].status == "awaiting_approval"  # nothing changed

    decided = client.approvals.approve(run.id, "send", input={"text": "$final, edited"})
    assert (decided.decided_by, decided.input_edited) == ("carol", True)
    assert run.wait(timeout=30) == {"after": {"text": "$final, edited"}}
    assert db.steps_of(run.id)["send"].input == {"text": "$final, edited"}
    [(_, kind, detail)] = _approval_events(run.id)[1:]
    assert (kind, detail) == ("approval_approved", {"by": "carol", "input_edited": True})


def test_a_rejected_step_fails_for_good_and_its_run_fails_like_any_permanent_failure(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker()
    run = Client().submit("approval-echo", {"text": "risky"})
    _awaiting(run.id, "send")
    listed = run_hive("approvals", "list", env=env)
    assert str(run.id) in listed.stdout and "approval: required" in listed.stdout
    assert "risky" not in listed.stdout, describe(listed)  # never the input in a listing
    shown = run_hive("approvals", "show", str(run.id), "send", env=env)
    assert '"text": "risky"' in shown.stdout and "requested" in shown.stdout, describe(shown)

    rejected = run_hive(
        "approvals", "reject", str(run.id), "send", "--reason", "too risky", "--by", "bob",
        env=env,
    )  # fmt: skip
    assert rejected.returncode == 0, describe(rejected)
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=30)

    assert failed.value.step_id == "send"
    steps = db.steps_of(run.id)
    assert (steps["send"].status, steps["after"].status) == ("failed", "skipped")
    assert steps["send"].error["type"] == "approval_rejected"
    assert steps["send"].error["message"] == "rejected by bob: too risky"
    [letter] = db.rows("SELECT step_id, error FROM dead_letters WHERE run_id = :r", r=run.id)
    assert letter.step_id == "send" and letter.error["type"] == "approval_rejected"
    assert _approval_events(run.id)[-1] == (
        "send",
        "approval_rejected",
        {"by": "bob", "reason": "too risky"},
    )
    again = run_hive("approvals", "approve", str(run.id), "send", env=env)
    assert again.returncode == 1 and "was rejected by bob at" in again.stderr, describe(again)


def test_timeouts_decide_with_their_action_under_beat(
    start_worker: Callable[..., HiveProcess], start_beat: Callable[..., HiveProcess]
) -> None:
    fast = {"HIVE_APPROVALS_INTERVAL_S": "0.5"}
    start_worker(extra_env=fast)
    start_beat(extra_env=fast)
    client = Client()
    approved = client.submit("approval-first", {"text": "go"})
    expired = client.submit("approval-expires", {"text": "stop"})

    assert approved.wait(timeout=60) == {"second": {"text": "go"}}
    with pytest.raises(RunFailed):
        expired.wait(timeout=60)

    [(_, _, asked), (_, kind, decided)] = _approval_events(approved.id)
    assert asked["timeout_action"] == "approve" and asked["timeout_at"]
    assert (kind, decided) == (
        "approval_timed_out",
        {"by": "hive", "input_edited": False, "action": "approve"},
    )
    assert _approval_events(expired.id)[-1][1:] == (
        "approval_timed_out",
        {"by": "hive", "reason": "approval_timeout", "action": "reject"},
    )
    error = db.steps_of(expired.id)["only"].error
    assert (error["type"], error["message"]) == ("approval_rejected", "the approval timed out")
    for run in (approved, expired):
        view = client.approvals.get(run.id, run.view().steps[0].step_id)
        assert view.decided_by == "hive" and view.timeout_at is not None
        assert view.decided_at is not None and view.decided_at >= view.timeout_at


def test_of_two_approvers_racing_exactly_one_decides_and_the_other_is_told_who_did(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker()
    client = Client()
    runs = [client.submit("approval-echo", {"text": f"r{i}"}) for i in range(4)]
    for run in runs:
        _awaiting(run.id, "send")

    for run in runs:
        racers = [
            subprocess.Popen(
                [*HIVE, "approvals", "approve", str(run.id), "send", "--by", who],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for who in ("ann", "ben")
        ]
        results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in racers]
        assert sorted(code for code, _ in results) == [0, 1], results
        [loser] = [err for code, err in results if code == 1]
        winner = client.approvals.get(run.id, "send").decided_by
        assert f"was approved by {winner} at" in loser, loser
    for run in runs:
        run.wait(timeout=30)
    assert db.scalar("SELECT count(*) FROM events WHERE kind = 'approval_approved'") == 4
    assert db.scalar("SELECT count(*) FROM step_runs WHERE step_id = 'send' AND attempt = 1") == 4


def test_a_tenant_sees_and_decides_its_own_approvals_alone(
    start_worker: Callable[..., HiveProcess],
) -> None:
    start_worker()
    acme = Client(tenant="acme", role="admin", identity="acme-admin")
    other = Client(tenant="globex", role="producer").submit("approval-echo", {"text": "g"})
    mine = acme.submit("approval-echo", {"text": "a"})
    _awaiting(mine.id, "send")
    _awaiting(other.id, "send")

    assert [(a.run_id, a.tenant) for a in acme.approvals.list()] == [(mine.id, "acme")]
    assert len(Client().approvals.list()) == 2
    with pytest.raises(ApprovalNotFound):
        acme.approvals.get(other.id, "send")
    with pytest.raises(ApprovalNotFound):
        acme.approvals.approve(other.id, "send")
    viewer = Client(tenant="acme", role="viewer")
    assert [a.step_id for a in viewer.approvals.list()] == ["send"]
    for role in ("viewer", "producer"):
        with pytest.raises(PermissionDenied):
            Client(tenant="acme", role=role).approvals.approve(mine.id, "send")
    assert db.steps_of(other.id)["send"].status == "awaiting_approval"

    acme.approvals.approve(mine.id, "send")
    assert mine.wait(timeout=30) == {"after": {"text": "a"}}
    assert _approval_events(mine.id)[-1][2]["by"] == "acme-admin"


def test_cancelling_a_run_awaiting_approval_closes_its_approval(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    start_worker()
    client = Client()
    run = client.submit("approval-first", {"text": "x"})
    _awaiting(run.id, "first")

    cancelled = run_hive("runs", "cancel", str(run.id), env=env)
    assert cancelled.returncode == 0, describe(cancelled)

    assert client.get(run.id).status == "cancelled"
    assert db.steps_of(run.id)["first"].status == "cancelled"
    view = client.approvals.get(run.id, "first")
    assert (view.status, view.decided_by) == ("cancelled", "hive")
    assert _approval_events(run.id)[-1][1] == "approval_cancelled"
    assert client.approvals.list() == []
    with pytest.raises(ApprovalError, match="was cancelled by hive"):
        client.approvals.approve(run.id, "first")


def test_a_step_of_a_run_past_its_deadline_is_neither_approved_nor_rejected(
    start_worker: Callable[..., HiveProcess], env: dict[str, str]
) -> None:
    # No beat runs: the run is past its deadline but the sweep has not expired it yet.
    start_worker()
    client = Client()
    run = client.submit("approval-echo", {"text": "late"}, deadline=3)
    _awaiting(run.id, "send")
    wait_until(
        lambda: db.rows("SELECT 1 FROM runs WHERE id = :r AND deadline_at <= now()", r=run.id),
        10,
        "the run's deadline to pass",
    )

    with pytest.raises(ApprovalError, match=r"deadline passed at .*ends expired"):
        client.approvals.approve(run.id, "send")
    refused = run_hive("approvals", "reject", str(run.id), "send", "--reason", "no", env=env)

    assert refused.returncode == 1 and "deadline passed" in refused.stderr, describe(refused)
    assert "Traceback" not in refused.stderr
    assert db.steps_of(run.id)["send"].status == "awaiting_approval"  # nothing was changed
    assert client.approvals.get(run.id, "send").status == "pending"
    assert client.get(run.id).status == "awaiting_approval"  # for the deadline sweep to expire
