"""Fleet-wide concurrency limits: a Redis semaphore whose slots are leases.

Each limit is a sorted set of holder → lease expiry (Redis time, ms). Acquiring is one Lua
script over every limit that applies: it first drops the expired leases, then takes a slot
in each limit or in none. A holder releases its slots when its call or step ends; a holder
that cannot (a SIGKILLed worker, a pool process the hard time limit killed) loses them when
their lease runs out. A lease is short (:data:`LEASE_S`, whatever the step's timeout) and
its process renews it while its holder runs (:mod:`hive.guard.keeper`), however long that
runs: a slot is never given to a second holder while the first still runs, and a dead
process's slots come back within :data:`LEASE_S`.

A step turned away has no way to know when a slot frees, so it comes back after a short
countdown that grows with each time in a row it was turned away (counted per holder in a
small hash beside the set), up to :data:`MAX_WAIT_S`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from hive import keys
from hive.guard.keeper import HOLD_LEASE_S, TICK_S, LeaseKeeper
from hive.guard.store import guard_redis, prefix, unavailable

LEASE_S = HOLD_LEASE_S
"""A slot's lease, renewed while its holder runs."""
FIRST_WAIT_S = 0.1
MAX_WAIT_S = 5.0
# Forgotten when a waiting step has not been turned away for this long.
_WAITERS_TTL_S = 600

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = ARGV[1]
local lease = tonumber(ARGV[2])
local n = #KEYS / 2
local waiter = ARGV[4 + n]
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
end
for i = 1, n do
  local limit = tonumber(ARGV[2 + i])
  if not redis.call('ZSCORE', KEYS[i], holder) and redis.call('ZCARD', KEYS[i]) >= limit then
    local denials = redis.call('HINCRBY', KEYS[n + i], waiter, 1)
    redis.call('EXPIRE', KEYS[n + i], tonumber(ARGV[3 + n]))
    return {0, i, denials}
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now + lease, holder)
  -- Never shorter than a lease already held there: the key's expiry frees every slot.
  if redis.call('PTTL', KEYS[i]) < lease then
    redis.call('PEXPIRE', KEYS[i], lease)
  end
  redis.call('HDEL', KEYS[n + i], waiter)
end
return {1, 0, 0}
"""


@dataclass(frozen=True)
class ConcurrencyLimit:
    entry: str
    """The policy key (``tenant:acme``), which names the limit in a deferral's reason."""
    limit: int


@dataclass(frozen=True)
class SlotDecision:
    acquired: bool
    limit: ConcurrencyLimit | None = None
    """The limit that turned the holder away."""
    denials: int = 0
    """Times in a row that limit turned this holder away, this one included."""


class Semaphore:
    """Takes and gives back slots of several concurrency limits for one holder."""

    def __init__(self, client: redis.Redis | None = None, keeper_tick_s: float = TICK_S) -> None:
        self._client = client
        self._acquire: Script | None = None
        self.keeper = LeaseKeeper(lambda: self.client, keeper_tick_s)

    @property
    def client(self) -> redis.Redis:
        return self._client or guard_redis()

    def acquire(
        self,
        limits: list[ConcurrencyLimit],
        holder: str,
        lease_s: float = LEASE_S,
        waiter: str | None = None,
    ) -> SlotDecision:
        """A slot in every one of ``limits`` for ``holder``, leased for ``lease_s`` and renewed
        until :meth:`release`, or none.
        Times turned away in a row are counted for ``waiter`` (default: ``holder``): the
        step across its attempts, since each deferral comes back as the next attempt."""
        if not limits:
            return SlotDecision(True)
        p = prefix()
        keys_ = [keys.concurrency_key(p, c.entry) for c in limits]
        keys_ += [keys.concurrency_waiters(p, c.entry) for c in limits]
        args: list[str | int] = [holder, max(int(lease_s * 1000), 1)]
        args += [*(c.limit for c in limits), _WAITERS_TTL_S, waiter or holder]
        if self._acquire is None:
            self._acquire = self.client.register_script(_ACQUIRE)
        try:
            acquired, index, denials = self._acquire(keys_, args)
        except redis.RedisError as exc:
            raise unavailable(exc) from exc
        if acquired:
            self.keeper.hold(keys_[: len(limits)], holder, lease_s)
            return SlotDecision(True)
        return SlotDecision(False, limits[int(index) - 1], int(denials))

    def release(self, limits: list[ConcurrencyLimit], holder: str) -> None:
        """Give the slots back (a slot already expired is simply not there)."""
        if not limits:
            return
        self.keeper.drop(holder)
        p = prefix()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for c in limits:
                    pipe.zrem(keys.concurrency_key(p, c.entry), holder)
                pipe.execute()
        except redis.RedisError:
            # Not given back now, it is when its lease runs out.
            return

    def holders(self, entry: str) -> int:
        """How many hold a live slot of ``entry`` (for tests and status)."""
        key = keys.concurrency_key(prefix(), entry)
        now_s, now_us = self.client.time()
        return int(self.client.zcount(key, now_s * 1000 + now_us // 1000, "+inf"))


def countdown_s(decision: SlotDecision, rng: random.Random | None = None) -> float:
    """How long a holder turned away waits: from :data:`FIRST_WAIT_S`, half again as long for
    each time in a row it was turned away, at most :data:`MAX_WAIT_S`; ±25 % spread, so
    waiting steps do not come back together."""
    base = min(FIRST_WAIT_S * 1.5 ** max(decision.denials - 1, 0), MAX_WAIT_S)
    return float(base * (rng or random).uniform(0.75, 1.25))
