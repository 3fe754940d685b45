"""Keeps the concurrency slots (and breaker probes) this process holds for as long as their
holders run.

A slot's lease (:mod:`hive.guard.slots`) is what frees it when its holder cannot: a worker
SIGKILLed, a pool process the hard time limit killed. So it is short, :data:`HOLD_LEASE_S`
whatever the step's timeout, and a killed worker's slots come back within that. It must
never free the slot of a holder that still runs, however long that runs (an agent
abandoned at its timeout under ``--pool threads``, which nothing kills, included).

So each process renews the leases it holds, from one daemon thread: a lease is extended to
its full length once a third of it has passed, and only while its holder still holds it (an
``XX`` update: a lease that already ran out is never taken back, since another holder may
have its slot by then). The renewals due at a tick go to Redis in one pipeline: a round trip
a tick for the whole process, none for a holder that ends within a third of a lease (and
nothing at all on a step no limit applies to). The renewals die with the process, which is
what the leases are for. A slot is given back when its holder ends, however long that
takes, and within a lease of its process's death.

Should Redis be out of this process's reach for longer than the two thirds of a lease left
at a renewal (about 6.7 s), its leases run out while their holders run: the holders go on
(nothing stops a step for it), the keeper lets them go when it next reaches Redis (a
warning each), and until they end the limit can admit one more for each. Those that could
not reach Redis either were turned away meanwhile (a limit that cannot be checked defers).

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
from typing import Any

import redis
from redis.exceptions import NoScriptError

logger = logging.getLogger(__name__)

HOLD_LEASE_S = 10.0
"""The lease of a concurrency slot or a breaker's probe: renewed while its holder runs, it
runs out within this of its process's death."""
# A lease is renewed once this share of it has passed; the rest is the margin for a renewal
# that fails (tried again each tick) or hangs (the client's 5 s socket timeout).
RENEW_AFTER = 1 / 3
# How often the keeper looks for leases due for renewal: a second of the 6.7 s left then.
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
    """``time.monotonic()`` from which the lease is renewed: a third of it spent."""


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
        self._sha: str | None = None

    def hold(self, keys: list[str], holder: str, lease_s: float) -> None:
        """``holder`` took slots under ``keys`` for ``lease_s``: renew them until dropped."""
        held = _Held(keys, lease_s, time.monotonic() + lease_s * RENEW_AFTER)
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
        failing: str | None = None  # the last failure logged with its traceback
        while self._pid == pid:
            time.sleep(self._tick_s)
            try:
                self.renew_due()
            except Exception as exc:
                # Not Redis out of reach (renew_due keeps that to itself): a bug, a client that
                # cannot be made. The thread goes on: were it to end, every lease this process
                # holds would run out within HOLD_LEASE_S under holders still running, and the
                # limits would admit more than they allow. The traceback once per kind.
                if repr(exc) != failing:
                    logger.exception("%s lease keeper failed; trying again each tick", self._what)
                    failing = repr(exc)
            else:
                failing = None

    def renew_due(self) -> None:
        """Extend every lease due for renewal, now, in one round trip."""
        now = time.monotonic()
        with self._lock:
            due = [(h, held) for h, held in self._held.items() if held.renew_at <= now]
        if not due:
            return
        try:
            results = self._extend(due)
        except redis.RedisError as exc:
            # Tried again next tick; each lease still has up to two thirds of it to run.
            logger.warning("%s leases of %d holders not renewed: %s", self._what, len(due), exc)
            return
        for (holder, held), kept in zip(due, results, strict=True):
            if isinstance(kept, Exception):
                logger.warning("%s lease of %s not renewed: %s", self._what, holder, kept)
                continue
            with self._lock:
                if self._held.get(holder) is not held:
                    continue  # released meanwhile
                if kept:
                    held.renew_at = time.monotonic() + held.lease_s * RENEW_AFTER
                else:
                    # Ran out before it could be renewed (Redis out of reach for the rest
                    # of the lease, or wiped): the slot may be another's now, so it is let go.
                    self._held.pop(holder, None)
                    logger.warning(
                        "%s lease of %s ran out while its holder ran", self._what, holder
                    )

    def _extend(self, due: list[tuple[str, _Held]]) -> list[int | Exception]:
        client = self._client()
        if self._sha is None:
            self._sha = client.script_load(self._source)
        replies = self._send(client, self._sha, due)
        if any(isinstance(r, NoScriptError) for r in replies):
            # Redis restarted or flushed its scripts: load it again, once.
            self._sha = client.script_load(self._source)
            replies = self._send(client, self._sha, due)
        return [r if isinstance(r, Exception) else int(r) for r in replies]

    @staticmethod
    def _send(client: redis.Redis, sha: str, due: list[tuple[str, _Held]]) -> list[Any]:
        # EVALSHA in a plain pipeline: redis-py's Script in a pipeline would first ask
        # SCRIPT EXISTS, a second round trip each time.
        with client.pipeline(transaction=False) as pipe:
            for holder, held in due:
                ms = max(int(held.lease_s * 1000), 1)
                pipe.evalsha(sha, len(held.keys), *held.keys, holder, ms)
            return list(pipe.execute(raise_on_error=False))
