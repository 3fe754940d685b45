"""``hive_runs_total`` counts every run's close, whoever closes it, and never goes down.

Workers close runs, and so do a cancel from the command line, beat's deadline sweep and
recovery closing a run a worker left open; retention then deletes old runs. A real
Prometheus scrapes a real ``hive exporter`` through all of it.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hive import Client
from hive.errors import RunFailed
from tests.support import db
from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess, wait_until
from tests.support.prometheus import Prometheus, binary
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(240)

# Recovery (and so the deadline sweep) every second.
FAST = {"HIVE_RECOVERY_INTERVAL_S": "1", "HIVE_LEASE_GRACE_S": "2"}


@pytest.fixture
def exporter_port(env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    binary("prometheus")
    port = free_port()
    proc = HiveProcess(["exporter", "--port", str(port)], env, tmp_path / "exporter.log")
    try:
        proc.wait_for_log("serving /metrics", timeout_s=60)
        yield port
    finally:
        proc.stop()


@pytest.fixture
def prometheus(tmp_path: Path, exporter_port: int) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path / "prometheus", {"hive-exporter": [f"127.0.0.1:{exporter_port}"]})
    yield server
    server.stop()


def _scraped(port: int) -> dict[tuple[str, str], float]:
    """(pipeline, status) -> hive_runs_total, as the exporter serves it now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as answer:
        text = answer.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "hive_runs":
            assert family.type == "counter", family
            for sample in family.samples:
                if sample.name == "hive_runs_total":
                    found[sample.labels["pipeline"], sample.labels["status"]] = sample.value
    return found


def _counts_become(port: int, expected: dict[tuple[str, str], float], what: str) -> None:
    seen: list[dict[tuple[str, str], float]] = [{}]

    def holds() -> bool:
        seen[0] = _scraped(port)
        return seen[0] == expected

    try:
        wait_until(holds, 30, what)
    except TimeoutError:
        raise AssertionError(f"{what}: scraped {seen[0]}, expected {expected}") from None


def test_every_close_is_counted_whoever_closes_the_run_and_retention_never_lowers_it(
    env: dict[str, str],
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    exporter_port: int,
    prometheus: Prometheus,
) -> None:
    port = exporter_port
    client = Client()
    start_worker("--concurrency", "2", extra_env=FAST)
    assert _scraped(port) == {}

    # A worker closes these two: the last step's success, a step failing for good.
    good = client.submit("echo-one", {"text": "counted"})
    good.wait(timeout=60)
    bad = client.submit("fails-midway", {"text": "counted"})
    with pytest.raises(RunFailed):
        bad.wait(timeout=60)
    expected = {("echo-one", "succeeded"): 1.0, ("fails-midway", "failed"): 1.0}
    _counts_become(port, expected, "the worker's two closes")

    # The command line cancels one: a process that is gone a moment later.
    sleeper = client.submit("fault-sleep", {"seconds": 30})
    wait_until(lambda: db.steps_of(sleeper.id)["nap"].status == "running", 30, "the nap")
    cancelled = run_hive("runs", "cancel", str(sleeper.id), env=env)
    assert cancelled.returncode == 0, describe(cancelled)
    expected[("fault-sleep", "cancelled")] = 1.0
    _counts_become(port, expected, "the cancel")

    # Beat's sweep expires one past its deadline.
    start_beat(extra_env=FAST)
    late = client.submit("fault-sleep", {"seconds": 20}, deadline=1.5)
    with pytest.raises(RunFailed) as stopped:
        late.wait(timeout=60)
    assert stopped.value.status == "expired"
    expected[("fault-sleep", "expired")] = 1.0
    _counts_become(port, expected, "the expiry")

    # Recovery closes a run whose worker died after its last step's success, before the
    # run's close (the state test_finish.py makes).
    db.execute(
        "UPDATE runs SET status = 'running', output = NULL, finished_at = NULL WHERE id = :id",
        id=str(good.id),
    )
    wait_until(lambda: db.run_status(good.id) == "succeeded", 30, "recovery to close it")
    expected[("echo-one", "succeeded")] = 2.0
    _counts_become(port, expected, "recovery's close")

    # Prometheus has seen every value so far; retention now deletes every finished run.
    wait_until(
        lambda: prometheus.value('sum(hive_runs_total{status="expired"})') == 1.0,
        30,
        "prometheus to scrape the counts",
    )
    db.execute(
        "UPDATE runs SET created_at = now() - interval '400 days',"
        " finished_at = now() - interval '400 days' WHERE finished_at IS NOT NULL"
    )
    purged = run_hive("maintenance", "purge", env=env)
    assert purged.returncode == 0, describe(purged)
    assert db.scalar("SELECT count(*) FROM runs") == 0
    assert _scraped(port) == expected
    time.sleep(3)  # a few more scrapes after the purge
    assert prometheus.value("sum(resets(hive_runs_total[5m]))") == 0
    assert prometheus.value("sum(hive_runs_total)") == sum(expected.values())
