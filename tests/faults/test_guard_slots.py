"""A worker SIGKILLed in the middle of a guarded call cannot give its concurrency slot back:
the slot's lease runs out and the next step takes it; until then, no step exceeds the
limit. Nor can it decide a breaker's probe: the probe's short hold, no longer renewed, runs
out and the next call probes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hive import Client
from hive.guard.breakers import CLOSED, HALF_OPEN, PROBE_LEASE_S, Breakers
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.partner import PartnerServer
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(240)

# callout-short's timeout is 5 s: its slot's lease is 5 + 10 s (hive/guard/admission.py).
LEASE_S = 15.0


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    server = PartnerServer()
    yield server
    server.close()


def test_a_killed_workers_slot_comes_back_after_its_lease(
    start_worker: Callable[..., HiveProcess],
    start_beat: Callable[..., HiveProcess],
    tmp_path: Path,
    partner: PartnerServer,
) -> None:
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  service:partner: {concurrency: 1}\n")
    env = {**FAST, "HIVE_LIMITS_FILE": str(limits)}
    # The first call is held 4 s by the partner: long enough to kill its worker mid-call,
    # short enough that the partner is done with it before the slot's lease ends.
    partner.delay_s = 4.0
    doomed = start_worker("--concurrency", "1", extra_env=env, name="doomed")
    first = Client().submit("callout-short", {"url": partner.url})
    wait_until(lambda: partner.in_flight == 1, 30, "the first call to reach the partner")
    claimed_at = db.scalar("SELECT started_at FROM step_runs WHERE run_id = :id", id=str(first.id))
    partner.delay_s = 0.0

    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker: nobody gives the slot back
    second = Client().submit("callout-short", {"url": partner.url})  # queued at once
    start_worker("--concurrency", "2", extra_env=env, name="survivor")
    ready_at = db.scalar("SELECT clock_timestamp()")  # the clock claimed_at was read from
    start_beat(extra_env=env)

    assert second.wait(timeout=120)["call"]["status"] == 200
    assert first.wait(timeout=120)["call"]["status"] == 200  # taken back by its own lease
    row = db.steps_of(second.id)["call"]
    waited = (row.started_at - claimed_at).total_seconds()
    print(f"\nslot of a killed worker: the next step ran {waited:.1f}s after it was taken")
    # The slot was leased a moment after the first step's claim.
    assert waited >= LEASE_S - 0.5
    assert row.attempt - row.deferrals == 1, "waiting for the slot used no retry"
    if (ready_at - claimed_at).total_seconds() < LEASE_S - 1:
        # The survivor took the queued step while the dead worker's lease still ran (on a
        # loaded machine its start can outlast the lease, and there is nothing to wait for).
        assert row.deferrals >= 1
    assert partner.max_in_flight == 1, "the limit held throughout"


def test_a_killed_workers_probe_is_replaced_within_the_probe_lease(
    start_worker: Callable[..., HiveProcess], tmp_path: Path, partner: PartnerServer
) -> None:
    # callout's timeout is 30 s: the step's lease, which held a probe before, is 40 s.
    limits = tmp_path / "limits.yaml"
    limits.write_text("breakers:\n  service:partner: {failures: 1, cooldown_s: 1}\n")
    env = {**FAST, "HIVE_LIMITS_FILE": str(limits)}
    breakers = Breakers()
    breakers.force("service:partner", "open", for_s=0.5)
    partner.delay_s = 120.0  # the probe's call hangs until its worker is killed
    doomed = start_worker("--concurrency", "1", extra_env=env, name="doomed")
    Client().submit("callout", {"url": partner.url})
    wait_until(lambda: partner.in_flight == 1, 30, "the probe's call to reach the partner")
    assert breakers.read(["service:partner"])["service:partner"].state == HALF_OPEN
    time.sleep(2 * PROBE_LEASE_S / 3)  # its hold renewed at least once meanwhile

    os.killpg(doomed.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    partner.delay_s = 0.0
    start_worker("--concurrency", "2", extra_env=env, name="survivor")
    second = Client().submit("callout", {"url": partner.url})

    assert second.wait(timeout=120)["call"]["status"] == 200
    closed = breakers.read(["service:partner"])["service:partner"]
    waited = time.monotonic() - killed_at
    print(f"\nprobe of a killed worker: the breaker closed {waited:.1f}s after the kill")
    assert closed.state == CLOSED
    # Its hold ran out within PROBE_LEASE_S of the kill (the survivor's start, a deferral's
    # second and the call on top), not the 40 s of its step's lease.
    assert waited < PROBE_LEASE_S + 15, waited
