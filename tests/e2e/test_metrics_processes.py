"""The worker's /metrics across its pool processes, its port and directory, and an exporter
whose database is down: scraped directly, as Prometheus would."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.commands import describe, run_hive, run_python
from tests.support.processes import HiveProcess, wait_until
from tests.support.producer import submit
from tests.support.redis_server import free_port

pytestmark = pytest.mark.timeout(180)

LOCAL = {"HIVE_METRICS_ADDRESS": "127.0.0.1"}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` on ``port``, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_pool_processes_are_summed_and_a_killed_one_keeps_its_counts_not_its_running_step(
    env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    port = free_port()
    worker = start_worker("--concurrency", "2", "--metrics-port", str(port), extra_env=LOCAL)
    submit(env, "echo-one", [{"text": f"t{i}"} for i in range(6)])
    wait_until(
        lambda: total(scrape(port), "hive_steps_total", agent="echo", status="succeeded") == 6,
        60,
        "six steps counted",
    )
    # A step that hangs: its pool process is killed while the gauge counts it running. Its
    # timeout is 20 s: with fault-hang's 1 s, a loaded machine saw the gauge only after the
    # hard limit (6 s) had ended the first attempt, and the kill missed it.
    submit(env, "metrics-hang", [{}])
    wait_until(
        lambda: total(scrape(port), "hive_steps_running", agent="hang") == 1, 60, "hang runs"
    )
    pools = worker.children()
    for pid in pools:
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: (
            total(scrape(port), "hive_step_retries_total", agent="hang", reason="worker_lost") == 1
        ),
        60,
        "the lost attempt retried",
    )
    # The retry hangs too, until its hard time limit (timeout 20 s + 5 s) kills its process.
    wait_until(
        lambda: total(scrape(port), "hive_steps_total", agent="hang", status="failed") == 1,
        90,
        "the step failed for good",
    )
    # Its killed process's share of the gauge goes once the process is reaped.
    wait_until(lambda: total(scrape(port), "hive_steps_running") == 0, 30, "nothing running")
    samples = scrape(port)
    assert total(samples, "hive_steps_total", agent="echo", status="succeeded") == 6
    assert total(samples, "hive_step_duration_seconds_count", agent="echo") == 6
    # One sample per label set: the processes are summed, never listed by pid.
    assert not any(dict(ls).get("pid") for (_, ls) in samples)


@pytest.mark.parametrize(
    ("command", "option", "setting"),
    [
        ("worker", "--metrics-port", "HIVE_METRICS_PORT (or --metrics-port)"),
        ("exporter", "--port", "HIVE_EXPORTER_PORT (or --port)"),
    ],
)
def test_a_metrics_port_in_use_stops_the_process_with_one_line(
    env: dict[str, str], command: str, option: str, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_hive(command, option, str(port), env={**env, **LOCAL})
    assert done.returncode == 1, describe(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, describe(done)
    assert setting in lines[0]
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]


@pytest.mark.parametrize("address", ["no-such-host.invalid", "192.0.2.1"])
@pytest.mark.parametrize(
    ("command", "option"), [("worker", "--metrics-port"), ("exporter", "--port")]
)
def test_a_metrics_address_that_cannot_be_had_is_named_by_its_variable(
    env: dict[str, str], command: str, option: str, address: str
) -> None:
    # Not a name that resolves; not an address of this host (TEST-NET-1).
    bad = {**env, **LOCAL, "HIVE_METRICS_ADDRESS": address}

    done = run_hive(command, option, str(free_port()), env=bad)

    assert done.returncode == 1, describe(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, describe(done)
    assert lines[0].startswith("error: HIVE_METRICS_ADDRESS: "), describe(done)
    assert address in lines[0]


def test_metrics_port_zero_serves_nothing(
    env: dict[str, str], start_worker: Callable[..., HiveProcess]
) -> None:
    port = free_port()
    start_worker(extra_env={**LOCAL, "HIVE_METRICS_PORT": str(port)}, name="off")
    scrape(port)  # the setting is read
    start_worker("--metrics-port", "0", extra_env={**LOCAL, "HIVE_METRICS_PORT": str(port)})
    # Only the first worker serves; the second one started without claiming the port.


_DIRS = """
import json, os, sys
from pathlib import Path
from hive.exposition import prepare_multiprocess_dir
base = Path(sys.argv[1])
mine = prepare_multiprocess_dir(base)
import prometheus_client.values as values
print(json.dumps({"mine": str(mine), "env": os.environ["PROMETHEUS_MULTIPROC_DIR"],
                  "left": sorted(p.name for p in base.iterdir()),
                  "mmap": values.ValueClass.__name__}))
"""


def test_each_worker_gets_a_fresh_directory_and_those_of_dead_workers_go(tmp_path: Path) -> None:
    import json

    base = tmp_path / "metrics"
    (base / "999999999").mkdir(parents=True)  # a worker that is gone
    (base / "999999999" / "counter_999999999.db").write_bytes(b"x")
    alive = base / str(os.getpid())  # this test process: still running
    alive.mkdir()
    done = run_python(_DIRS, str(base), env=dict(os.environ))
    assert done.returncode == 0, describe(done)
    seen = json.loads(done.stdout)
    assert seen["env"] == seen["mine"]
    assert seen["mmap"] == "MmapedValue"  # prometheus-client took the multiprocess mode
    assert "999999999" not in seen["left"] and str(os.getpid()) in seen["left"]
    assert not Path(seen["mine"]).exists()  # removed when that process exited


def test_the_exporter_reports_an_unreachable_database_and_keeps_serving(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    dead_pg = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/hive"
    proc = HiveProcess(
        ["exporter", "--port", str(port)],
        {**env, **LOCAL, "HIVE_DATABASE_URL": dead_pg},
        tmp_path / "exporter.log",
    )
    try:
        proc.wait_for_log("serving /metrics", timeout_s=60)
        samples = scrape(port)
        assert samples[("hive_exporter_source_up", (("source", "postgresql"),))] == 0
        assert samples[("hive_exporter_source_up", (("source", "redis"),))] == 1
        assert total(samples, "hive_queue_depth", queue="hive.default") == 0
        assert not any(n == "hive_runs_in_flight" for (n, _) in samples)
        assert "cannot read PostgreSQL" in proc.log()
    finally:
        proc.stop()
