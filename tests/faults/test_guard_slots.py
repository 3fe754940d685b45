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
from hive.guard import slots
from hive.guard.breakers import CLOSED, HALF_OPEN, PROBE_LEASE_S, Breakers
from tests.faults.conftest import FAST
from tests.support import db
from tests.support.partner import PartnerServer
from tests.support.processes import HiveProcess, wait_until

pytestmark = pytest.mark.timeout(240)

SLOT_LEASE_S = slots.LEASE_S


@pytest.fixture
def partner() -> Iterator[PartnerServer]:
    server = PartnerServer()
    yield server
    server.close()


def test_a_killed_workers_slot_comes_back_within_the_slot_lease_whatever_its_timeout(
    start_worker: Callable[..., HiveProcess],
    tmp_path: Path,
    partner: PartnerServer,
) -> None:
    # callout-long's timeout is 120 s: a slot leased for the step's timeout would be held
    # for two minutes after its worker died.
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  service:partner: {concurrency: 1}\n")
    env = {**FAST, "HIVE_LIMITS_FILE": str(limits)}
    # The first call is held 15 s by the partner: past a slot's lease, so the slot is kept
    # only by its worker's renewals; the partner is done with it before the slot comes back.
    partner.delay_s = 15.0
    doomed = start_worker("--concurrency", "1", extra_env=env, name="doomed")
    Client().submit("callout-long", {"url": partner.url})
    wait_until(lambda: partner.in_flight == 1, 30, "the first call to reach the partner")
    reached = time.monotonic()
    partner.delay_s = 0.0
    start_worker("--concurrency", "2", extra_env=env, name="survivor")
    second = Client().submit("callout-long", {"url": partner.url})
    wait_until(lambda: _deferrals(second.id) >= 1, 30, "the second step to be turned away")
    # Killed past one lease (kept so far by its renewals), before the partner answers it.
    time.sleep(max(SLOT_LEASE_S + 3 - (time.monotonic() - reached), 0))
    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker: nobody gives the slot back
    killed_at = db.scalar("SELECT clock_timestamp()")

    assert second.wait(timeout=150)["call"]["status"] == 200
    row = db.steps_of(second.id)["call"]
    waited = (row.started_at - killed_at).total_seconds()
    print(f"\nslot of a killed worker: the next step ran {waited:.1f}s after the kill")
    # Within a lease of its last renewal, plus a turned-away step's longest wait (5 s,
    # +25 %) and a loaded machine's delays; the step's lease had 100 s to go.
    assert 0 < waited < SLOT_LEASE_S + 12, waited
    assert row.attempt - row.deferrals == 1, "waiting for the slot used no retry"
    assert partner.max_in_flight == 1, "the limit held throughout"


def _deferrals(run_id: object) -> int:
    return int(db.scalar("SELECT deferrals FROM step_runs WHERE run_id = :id", id=str(run_id)))


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
