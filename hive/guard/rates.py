"""Fleet-wide rate limits: GCRA in one Lua script, with reservations for deferred steps.

Why a script of our own and not the ``limits`` library:

- **The countdown.** A step over its limit is deferred until it may go. GCRA (the generic
  cell rate algorithm, as redis-cell implements it) keeps one number per limit, the
  theoretical arrival time (TAT), and says exactly when the next request fits; a window
  counter knows only when its window resets.
- **Reservations.** When a step must wait, the script books its slot at once (it moves the
  TAT on) and keeps a reservation key saying when the slot falls due; the step is deferred
  until then and, coming back, finds its slot held. Steps that wait therefore queue in
  order and come back one per slot, instead of all waking when the limit frees and all
  but one being deferred again. Only a wait up to :data:`RESERVE_HORIZON_S` is booked, so
  a cancelled backlog can waste at most that much of a limit; a step further back is
  deferred, unbooked, until it is within the horizon.
- **All or nothing.** A step is admitted only when every limit that applies to it (its
  agent's and its tenant's; a model's requests and tokens) has room, in one atomic
  script: a limit is never spent for a step another limit turns away.
- **Weights both ways.** Tokens per minute cost the estimate before an LLM call and are
  corrected by the difference after it, up or down (``limits`` can only add hits); and
  ``limits[redis]`` pins redis-py below 8, which Hive's broker clients already use.

Times come from Redis's own clock (``TIME`` inside the script), so workers' clocks never
matter. A key expires once its TAT is past: an idle limit holds nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from hive import keys
from hive.guard.store import guard_redis, prefix, unavailable

# The longest wait a deferred step gets a slot booked for.
RESERVE_HORIZON_S = 60.0
# A step coming back this close before its booked slot takes it: its countdown was measured
# by a worker's clock from a little after the booking, so it is rarely early, and by less.
_EARLY_S = 0.05
# A booked slot is kept this long after it fell due, for a step that comes back late
# (busy workers); then the slot is given up, and the step takes a new one.
_RESERVATION_GRACE_S = 300.0

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local early = tonumber(ARGV[4])
local wait, worst = 0, 0
local tats, stored = {}, {}
for i = 1, n do
  local interval = tonumber(ARGV[2 + 3 * i])
  local tolerance = tonumber(ARGV[3 + 3 * i])
  local cost = tonumber(ARGV[4 + 3 * i])
  local tat = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  if tat < now then tat = now end
  stored[i] = tat
  local due = redis.call('GET', KEYS[2 * i])
  local w
  if due then
    w = tonumber(due) - early - now
  else
    tats[i] = tat + interval * cost
    w = tats[i] - tolerance - now
  end
  if w > wait then wait, worst = w, i end
end
local spans = {}
if wait > horizon then
  for i = 1, n do spans[i] = tostring(stored[i] - now) end
  return {0, tostring(wait), worst, 0, unpack(spans)}
end
for i = 1, n do
  if tats[i] then
    local ttl = math.max(1, math.ceil(tats[i] - now))
    redis.call('SET', KEYS[2 * i - 1], tostring(tats[i]), 'PX', ttl)
  end
  if wait > 0 and tats[i] then
    redis.call('SET', KEYS[2 * i], tostring(now + wait), 'PX', math.ceil(wait + grace))
  elseif wait <= 0 then
    redis.call('DEL', KEYS[2 * i])
  end
  spans[i] = tostring((tats[i] or stored[i]) - now)
end
if wait > 0 then
  return {0, tostring(wait), worst, 1, unpack(spans)}
end
return {1, '0', 0, 0, unpack(spans)}
"""

_CORRECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[1])
if tat > now then
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.max(1, math.ceil(tat - now)))
else
  redis.call('DEL', KEYS[1])
end
return 1
"""


@dataclass(frozen=True)
class RateLimit:
    """One limit to admit against: ``interval_s`` per unit, ``burst`` units at once when idle."""

    entry: str
    """The policy key (``service:partner``), which names the limit in a deferral's reason."""
    measure: str
    """``requests`` or ``tokens``."""
    interval_s: float
    burst: float
    cost: float = 1.0

    def remaining(self, backlog_s: float) -> int:
        """How many units more would be let through now, given the limit's backlog."""
        return max(int((self.burst * self.interval_s - backlog_s) / self.interval_s), 0)


@dataclass(frozen=True)
class RateDecision:
    admitted: bool
    wait_s: float = 0.0
    """Until the step may go (booked) or may try to book (not booked)."""
    limit: RateLimit | None = None
    """The limit that made it wait longest."""
    booked: bool = False
    backlogs_s: tuple[float, ...] = ()
    """Each limit's backlog after the decision, in the order given: how long until it is
    idle again (its whole burst free), as redis-cell's ``reset_after``."""


class RateLimiter:
    """Admits against several rate limits at once, for one holder (a step)."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client
        self._admit: Script | None = None
        self._correct: Script | None = None

    @property
    def client(self) -> redis.Redis:
        return self._client or guard_redis()

    def admit(self, limits: list[RateLimit], holder: str, *, book: bool = True) -> RateDecision:
        """Take a unit (``cost``) of every limit, or none; book a slot when the wait is short
        (never with ``book=False``: a caller that is answered at once, not deferred)."""
        if not limits:
            return RateDecision(True)
        keys_: list[str] = []
        args: list[float | str] = [
            len(limits),
            RESERVE_HORIZON_S * 1000 if book else 0,
            _RESERVATION_GRACE_S * 1000,
            _EARLY_S * 1000,
        ]
        p = prefix()
        for limit in limits:
            keys_ += [
                keys.rate_key(p, limit.entry, limit.measure),
                keys.rate_reservation(p, limit.entry, limit.measure, holder),
            ]
            # A request bigger than the burst could never fit: it waits for a full bucket.
            cost = min(limit.cost, limit.burst)
            args += [limit.interval_s * 1000, limit.burst * limit.interval_s * 1000, cost]
        try:
            admitted, wait_ms, worst, booked, *spans = self._script("_admit", _ADMIT)(keys_, args)
        except redis.RedisError as exc:
            raise unavailable(exc) from exc
        backlogs = tuple(max(float(span) / 1000, 0.0) for span in spans)
        if admitted:
            return RateDecision(True, backlogs_s=backlogs)
        wait_s = float(wait_ms) / 1000
        return RateDecision(False, wait_s, limits[int(worst) - 1], bool(booked), backlogs)

    def correct(self, limit: RateLimit, units: float) -> None:
        """Charge ``units`` more (or, negative, fewer) of ``limit`` than admitted: an LLM
        call's real tokens against its estimate."""
        if units == 0:
            return
        key = keys.rate_key(prefix(), limit.entry, limit.measure)
        try:
            self._script("_correct", _CORRECT)([key], [units * limit.interval_s * 1000])
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def _script(self, attr: str, source: str) -> Script:
        script: Script | None = getattr(self, attr)
        if script is None:
            script = self.client.register_script(source)
            setattr(self, attr, script)
        return script


def countdown_s(decision: RateDecision, rng: random.Random | None = None) -> float:
    """How long a step turned away waits: until its booked slot; unbooked, until its wait is
    within the horizon, spread over a quarter of it so a backlog does not wake at once."""
    if decision.booked:
        return decision.wait_s
    spread = (rng or random).uniform(0, RESERVE_HORIZON_S / 4)
    return max(decision.wait_s - RESERVE_HORIZON_S, 0.0) + spread


def tokens_limit(entry: str, tokens_per_minute: int, cost: float) -> RateLimit:
    """A tokens-per-minute limit: a minute's tokens may go at once when idle."""
    return RateLimit(entry, "tokens", 60.0 / tokens_per_minute, float(tokens_per_minute), cost)


def requests_limit(entry: str, interval_s: float, burst: int) -> RateLimit:
    return RateLimit(entry, "requests", interval_s, float(burst))
