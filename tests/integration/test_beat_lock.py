"""The maintenance lock (hive/beat/lock.py) against the real Redis: leased briefly and renewed
while its holder runs, so a holder that dies frees it within a lease, not at its ttl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hive import keys
from hive.beat import lock
from hive.settings import get_settings
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(60)


def _key(name: str) -> str:
    return keys.maintenance_lock(get_settings().broker.key_prefix, name)


def test_a_holder_killed_mid_sweep_frees_the_lock_within_a_lease(
    hive_env: dict[str, str], clean_state: None
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nfrom hive.beat import lock\n"
         "with lock.held(lock.broker_redis(), 'health', ttl_s=120) as mine:\n"
         "    print(mine, flush=True)\n    time.sleep(60)\n"],
        env={**os.environ, **hive_env}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        os.kill(holder.pid, signal.SIGKILL)  # a worker killed in the middle of a sweep
    finally:
        holder.kill()
        holder.wait()

    # Before, the lock lived its whole ttl (120 s here; 60 s at least for the health sweep).
    left_ms = lock.broker_redis().pttl(_key("health"))
    assert 0 < left_ms <= lock.LEASE_S * 1000


def test_a_lock_is_renewed_while_its_holder_runs_and_given_up_past_its_ttl(
    clean_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lock, "LEASE_S", 0.3)
    client = lock.broker_redis()

    with lock.held(client, "recover", ttl_s=60) as mine:
        assert mine
        time.sleep(1.0)  # three leases
        with lock.held(client, "recover", ttl_s=60) as other:
            assert not other, "renewed: still held"
    with lock.held(client, "recover", ttl_s=60) as again:
        assert again, "released at the block's end"

    with lock.held(client, "purge", ttl_s=0.6) as mine:
        assert mine
        # A holder stuck past its ttl loses the lock: the next sweep may run.
        wait_until(lambda: client.pttl(_key("purge")) < 0, 5, "the lock to lapse at its ttl")
