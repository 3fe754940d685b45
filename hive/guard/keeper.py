"""Keeps the concurrency slots (and breaker probes) this process holds for as long as their
holders run.

A slot's lease (:mod:`hive.guard.slots`) is what frees it when its holder cannot: a worker
SIGKILLed, a pool process the hard time limit killed. It must never free the slot of a
holder that still runs. Under ``--pool threads`` nothing kills an agent that ignores its
timeout (:mod:`hive.tasks.deadline` abandons its thread), so such an agent can outlive its
lease, and the limit would then admit one more holder than it allows.

So each process renews the leases it holds, from one daemon thread: a lease is extended to
its full length once half of it has passed, and only while its holder still holds it (an
``XX`` update: a lease that already ran out is never taken back, since another holder may
have its slot by then). The renewals die with the process, which is what the leases are for.
A slot is given back when its holder ends, however long that takes, and about a lease's
length after its process dies.

A half-open breaker's probe (:mod:`hive.guard.breakers`) is kept the same way, by a keeper
of its own whose script renews the probe's lease in the breaker's hash.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.commands.core import Script

logger = logging.getLogger(__name__)

# How often the keeper looks for leases half spent. A lease is at least a few seconds (a
# step's timeout plus margins), so a second leaves most of its second half to renew it in.
TICK_S = 1.0

_EXTEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
local kept = 0
for i = 1, #KEYS do
  local expiry = redis.call('ZSCORE', KEYS[i], ARGV[1])
  if expiry and tonumber(expiry) > now then
    redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[1])
    if redis.call('PTTL', KEYS[i]) < lease then
      redis.call('PEXPIRE', KEYS[i], lease)
    end
    kept = kept + 1
  end
end
return kept
"""


@dataclass
class _Held:
    keys: list[str]
    lease_s: float
    renew_at: float
    """``time.monotonic()`` from which the lease is renewed: half of it spent."""


class LeaseKeeper:
    """Renews the leases of the slots this process holds (one keeper per semaphore)."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        tick_s: float = TICK_S,
        script: str = _EXTEND,
        what: str = "slot",
    ) -> None:
        """``script`` renews one holder's leases: KEYS its keys, ARGV the holder and the
        lease in ms; it returns how many it renewed (0: the lease had run out)."""
        self._client = client
        self._tick_s = tick_s
        self._source = script
        self._what = what
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._pid = 0  # the process whose thread renews; a forked child starts its own
        self._script: Script | None = None

    def hold(self, keys: list[str], holder: str, lease_s: float) -> None:
        """``holder`` took slots under ``keys`` for ``lease_s``: renew them until dropped."""
        held = _Held(keys, lease_s, time.monotonic() + lease_s / 2)
        with self._lock:
            if self._pid != os.getpid():
                # A fork's child inherits its parent's holders, not their holding.
                self._held.clear()
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="hive-lease-keeper", daemon=True).start()
            self._held[holder] = held

    def drop(self, holder: str) -> None:
        with self._lock:
            self._held.pop(holder, None)

    def holding(self) -> int:
        """How many holders this process keeps (for tests)."""
        with self._lock:
            return len(self._held)

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self._tick_s)
            self.renew_due()

    def renew_due(self) -> None:
        """Extend every lease half spent, now."""
        now = time.monotonic()
        with self._lock:
            due = [(h, held) for h, held in self._held.items() if held.renew_at <= now]
        for holder, held in due:
            try:
                kept = self._extend(held.keys, holder, held.lease_s)
            except redis.RedisError as exc:
                # Tried again next tick; the lease still has up to half its length to run.
                logger.warning("%s lease of %s not renewed: %s", self._what, holder, exc)
                continue
            with self._lock:
                if self._held.get(holder) is not held:
                    continue  # released meanwhile
                if kept:
                    held.renew_at = time.monotonic() + held.lease_s / 2
                else:
                    # Ran out before it could be renewed (Redis unreachable for half a
                    # lease, or wiped): the slot may be another's now, so it is let go.
                    self._held.pop(holder, None)
                    logger.warning(
                        "%s lease of %s ran out while its holder ran", self._what, holder
                    )

    def _extend(self, keys: list[str], holder: str, lease_s: float) -> int:
        if self._script is None:
            self._script = self._client().register_script(self._source)
        return int(self._script(keys, [holder, max(int(lease_s * 1000), 1)]))
