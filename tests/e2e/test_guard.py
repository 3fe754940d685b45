"""Fleet-wide limits and breakers, with real workers: a rate limit holds across two worker
hosts, a concurrency limit is never exceeded, a failing service opens its breaker and steps
wait (deferred, no retry used) until one probe closes it; operators open and close one."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hive import Client, RunFailed
from tests.support import db
from tests.support.commands import run_hive
from tests.support.partner import PartnerServer
from tests.support.processes import HiveProcess, wait_until


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    server = PartnerServer()
    yield server
    server.close()


def _limits(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return {"HIVE_LIMITS_FILE": str(path)}


def _events(kind: str) -> list[dict[str, Any]]:
    rows = db.rows("SELECT detail FROM events WHERE kind = :k ORDER BY id", k=kind)
    return [r.detail for r in rows]


@pytest.mark.timeout(300)
def test_a_rate_limit_holds_across_two_worker_hosts_without_using_retries(
    start_worker: Callable[..., HiveProcess], tmp_path: Path
) -> None:
    """5 steps a second for 150 steps: 30 s of starts, measured from the steps' own start
    times in PostgreSQL; within 10 % of the limit (a correctness bound, not a speed)."""
    rate, steps = 5.0, 150
    env = _limits(tmp_path, f"limits:\n  agent:echo: {{rate: {rate:g}/second}}\n")
    start_worker("--concurrency", "2", extra_env=env, name="host-a")
    start_worker("--concurrency", "2", extra_env=env, name="host-b")

    client = Client()
    runs = [client.submit("echo-one", {"text": f"t{i}"}) for i in range(steps)]
    for run in runs:
        run.wait(timeout=120)

    rows = db.rows("SELECT started_at, worker, attempt, deferrals FROM step_runs")
    assert len(rows) == steps
    starts = sorted(r.started_at.timestamp() for r in rows)
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    busiest = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    print(
        f"\nrate limit {rate:g}/s over {len(starts)} steps on 2 workers: achieved "
        f"{achieved:.3f}/s over {starts[-1] - starts[0]:.1f}s; busiest second {busiest}; "
        f"deferrals {sum(r.deferrals for r in rows)}"
    )
    assert abs(achieved - rate) / rate <= 0.10
    assert {r.worker for r in rows} == {"host-a@test", "host-b@test"}
    assert db.scalar("SELECT count(*) FROM step_attempts") == 0, "no retry used"
    assert all(r.attempt - r.deferrals == 1 for r in rows), "every step ran once"
    assert sum(r.deferrals for r in rows) >= steps - 5, "almost every step waited its turn"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("pool", "slots"), [("prefork", "3"), ("threads", "8")])
def test_a_concurrency_limit_is_never_exceeded_across_workers(
    start_worker: Callable[..., HiveProcess],
    tmp_path: Path,
    partner: PartnerServer,
    pool: str,
    slots: str,
) -> None:
    partner.delay_s = 0.5
    env = _limits(tmp_path, "limits:\n  service:partner: {concurrency: 2}\n")
    start_worker("--pool", pool, "--concurrency", slots, extra_env=env, name="host-a")
    start_worker("--pool", pool, "--concurrency", slots, extra_env=env, name="host-b")

    client = Client()
    runs = [client.submit("callout", {"url": partner.url}) for _ in range(12)]
    for run in runs:
        assert run.wait(timeout=120)["call"]["status"] == 200

    print(f"\nconcurrency 2 on 2 {pool} workers of {slots}: {partner.max_in_flight} at once")
    assert partner.max_in_flight == 2, "never more than the limit, and the limit was reached"
    assert partner.served() == 12
    assert db.scalar("SELECT count(*) FROM step_attempts") == 0, "no retry used"
    assert db.scalar("SELECT sum(deferrals) FROM step_runs") > 0


@pytest.mark.timeout(300)
def test_a_failing_service_opens_the_breaker_and_steps_wait_until_one_probe_closes_it(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    tmp_path: Path,
    partner: PartnerServer,
) -> None:
    partner.status = 503
    env = _limits(tmp_path, "breakers:\n  service:partner: {failures: 3, cooldown_s: 20}\n")
    start_worker("--concurrency", "2", extra_env=env)

    client = Client()
    runs = [client.submit("callout", {"url": partner.url}) for _ in range(6)]
    wait_until(lambda: bool(_events("breaker")), 60, "the breaker to open")
    time.sleep(0.5)  # a call that was in flight when it opened has its answer
    failed_calls = partner.served(503)
    # The steps now wait: no call reaches the partner while the breaker is open (20 s).
    time.sleep(2)
    assert partner.served() == failed_calls, "the open breaker let a call through"

    # The partner recovers, and answers slowly: whatever reaches it during the probe is seen.
    partner.status, partner.delay_s = 200, 1.5
    cli_env = {**os.environ, **hive_env, **env}
    shown = run_hive("breakers", "show", "partner", "--json", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "open"
    unknown = run_hive("breakers", "show", "service:nobody", env=cli_env)
    assert unknown.returncode == 1
    assert "no breaker 'service:nobody'" in unknown.stderr
    assert "known breakers: service:partner" in unknown.stderr
    for run in runs:
        assert run.wait(timeout=120)["call"]["status"] == 200

    transitions = [(e["from"], e["to"]) for e in _events("breaker")]
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    recovered = sorted((start, end) for start, end, status in partner.answered if status == 200)
    probe_end = recovered[0][1]
    assert sum(1 for start, _ in recovered if start < probe_end) == 1, "exactly one probe"
    # Every failed attempt was a real call; waiting for the breaker used up no retry.
    attempts = db.rows("SELECT error FROM step_attempts")
    assert len(attempts) == failed_calls
    assert all(a.error["message"] == "partner answered 503" for a in attempts)
    assert 3 <= failed_calls <= 4, "the third failure opened it (a second call was in flight)"
    assert db.scalar("SELECT sum(deferrals) FROM step_runs") > 0
    deferred = _events("deferred")
    assert deferred and all(e["kind"] == "breaker" for e in deferred)
    print(
        f"\nbreaker: {failed_calls} failed calls opened it, "
        f"{db.scalar('SELECT sum(deferrals) FROM step_runs')} deferrals, 1 probe, 6 runs done"
    )


@pytest.mark.timeout(300)
def test_an_operator_opens_and_closes_a_breaker_and_fail_policies_fail_at_once(
    hive_env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    tmp_path: Path,
    partner: PartnerServer,
) -> None:
    env = _limits(
        tmp_path,
        "breakers:\n  default: {failures: 3}\n  provider:acme-llm: {on_open: fail}\n",
    )
    cli_env = {**os.environ, **hive_env, **env}
    start_worker("--concurrency", "2", extra_env=env)

    opened = run_hive("breakers", "open", "service:partner", env=cli_env)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "service:partner open (until closed)"
    run = Client().submit("callout", {"url": partner.url})
    wait_until(
        lambda: (db.scalar("SELECT sum(deferrals) FROM step_runs") or 0) >= 1,
        30,
        "the step to wait for the breaker",
    )
    assert partner.served() == 0
    listed = run_hive("breakers", "list", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    (partner_breaker,) = [b for b in json.loads(listed.stdout) if b["name"] == "service:partner"]
    assert (partner_breaker["state"], partner_breaker["by"]) == ("open", "operator")
    assert partner_breaker["policy"]["failures"] == 3
    assert any(b["name"] == "provider:acme-llm" for b in json.loads(listed.stdout))

    closed = run_hive("breakers", "close", "partner", env=cli_env)
    assert closed.returncode == 0, closed.stderr
    assert run.wait(timeout=60)["call"]["status"] == 200
    transitions = [(e["from"], e["to"], e["by"]) for e in _events("breaker")]
    assert transitions == [("closed", "open", "operator"), ("open", "closed", "operator")]

    # on_open: fail: the step fails at once, for good, naming the breaker.
    held = run_hive("breakers", "open", "provider:acme-llm", "--for", "1h", env=cli_env)
    assert held.returncode == 0, held.stderr
    failing = Client().submit("callout-model", {"url": partner.url})
    with pytest.raises(RunFailed) as raised:
        failing.wait(timeout=60)
    assert raised.value.error["type"] == "BreakerOpen"
    assert "breaker provider:acme-llm is open" in raised.value.error["message"]

    # The default policy covers every service and provider not named.
    shown = run_hive("breakers", "show", "provider:anyone", "--json", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "closed"
