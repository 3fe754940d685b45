"""Circuit breakers shared by the fleet, per service (``service:NAME``) and per LLM provider
(``provider:NAME``).

``closed`` → ``open`` after ``failures`` failures in a row, or a ``failure_ratio`` of the
calls in a ``window_s`` (at least ``min_calls`` of them; the window is a tumbling one). Open
for ``cooldown_s``: calls are turned away (the step is deferred until the cooldown ends,
fails at once with ``on_open: fail``, or is held for a person with ``on_open: escalate``).
Then ``half_open``: the first call is let through as the probe, the only one (a Redis hash
and a Lua script make the choice atomic across the fleet); its success closes the breaker,
its failure opens it again. The probe is held by a short lease (:data:`PROBE_LEASE_S`) that
its process renews while the call runs (:mod:`hive.guard.keeper`), not by the step's whole
lease: a probe whose worker is killed is replaced within that, rather than the breaker
staying half-open for the step's timeout and more. A step turned away while a probe is out
still waits as long as the probe may take (its step's lease, at most the cooldown). An
operator can open one (for a time, or until closed) and close one.

The limits file's ``default`` makes a breaker for each name it does not declare, and a
run's input can name any host (an ``http`` step's URL): so it makes at most its
``max_breakers`` at once (:meth:`Breakers.place`, a script over a sorted set of the names it
made and their last use). A name past them shares its kind's overflow breaker,
``service:*`` or ``provider:*``; a name's place is given back once it has been idle as long
as a closed breaker's state lasts and it has no state left (an open breaker keeps its
place), looked for a few at a time by the placing script itself. A name an operator opened
(``hive breakers open``) is its own breaker while its state lasts, place or none.

The state is a Redis hash, rebuilt from nothing: losing it closes every breaker. An idle
closed breaker's hash expires (an open one's a day after its cooldown), and beat's
``cleanup_services`` then takes its name out of the index (:meth:`Breakers.prune`), so
``hive_breaker_state`` keeps no series for every breaker that ever failed. Each
transition is returned by the script that made it, so exactly one process sees it, and that
process records it: a ``breaker`` event in PostgreSQL and a log line. ``hive exporter``
reads the states for ``hive_breaker_state``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from hive import keys
from hive.db import events as event_log
from hive.db.retrying import in_transaction
from hive.errors import HiveError
from hive.guard.keeper import HOLD_LEASE_S, TICK_S, LeaseKeeper
from hive.guard.policy import OVERFLOW, BreakerPolicy
from hive.guard.store import as_text, guard_redis, prefix, unavailable

logger = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
GAUGE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
# An idle closed breaker's hash expires; an open one lasts well past its cooldown.
_OPEN_KEEP_S = 86400
PROBE_LEASE_S = HOLD_LEASE_S
"""A probe's hold, renewed by its process every third of it while its call runs: a probe
whose process died is replaced within this. (A Redis out of reach for two thirds of it can
let a second probe through: one call more, which a breaker can afford.)"""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# ARGV: the holder, the probe's lease (ms, renewed while it runs), the cooldown (ms), the
# step's lease (ms: how long the probe may take at most, for the wait of those turned away).
_ALLOW = (
    _NOW
    + """
local h = KEYS[1]
local state = redis.call('HGET', h, 'state') or 'closed'
if state == 'closed' then return {1, state, 0, ''} end
local holder, lease, cooldown = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local deadline = now + tonumber(ARGV[4])
if state == 'open' then
  local till = tonumber(redis.call('HGET', h, 'open_until') or '0')
  if till == 0 then return {0, state, cooldown, ''} end
  if now < till then return {0, state, till - now, ''} end
  redis.call('HSET', h, 'state', 'half_open', 'probe', holder, 'probe_until', now + lease,
             'probe_deadline', deadline, 'changed_at', now)
  return {1, 'half_open', 0, 'open>half_open'}
end
local probe = redis.call('HGET', h, 'probe')
if probe == holder then return {1, state, 0, ''} end
local till = tonumber(redis.call('HGET', h, 'probe_until') or '0')
if probe and now < till then
  local ends = tonumber(redis.call('HGET', h, 'probe_deadline') or till)
  return {0, state, math.min(math.max(till, ends) - now, cooldown), ''}
end
redis.call('HSET', h, 'probe', holder, 'probe_until', now + lease, 'probe_deadline', deadline)
return {1, state, 0, ''}
"""
)

# The keeper's renewal of a probe's lease: only while it is still the probe, in time.
_RENEW_PROBE = (
    _NOW
    + """
local h = KEYS[1]
if redis.call('HGET', h, 'state') ~= 'half_open' or redis.call('HGET', h, 'probe') ~= ARGV[1]
   then return 0 end
if tonumber(redis.call('HGET', h, 'probe_until') or '0') <= now then return 0 end
redis.call('HSET', h, 'probe_until', now + tonumber(ARGV[2]))
return 1
"""
)

_RECORD = (
    _NOW
    + """
local h = KEYS[1]
local holder, ok = ARGV[1], ARGV[2] == '1'
local threshold, ratio = tonumber(ARGV[3]), tonumber(ARGV[4])
local window, min_calls, cooldown = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local keep = tonumber(ARGV[8])
local state = redis.call('HGET', h, 'state') or 'closed'
local function open(from)
  redis.call('HSET', h, 'state', 'open', 'open_until', now + cooldown, 'opened_at', now,
             'changed_at', now, 'by', 'failures')
  redis.call('HDEL', h, 'probe', 'probe_until', 'probe_deadline')
  redis.call('PEXPIRE', h, cooldown + keep)
  redis.call('SADD', KEYS[2], ARGV[9])
  return {'open', from .. '>open', redis.call('HGET', h, 'failures') or '0'}
end
if state == 'half_open' then
  if redis.call('HGET', h, 'probe') ~= holder then return {state, '', '0'} end
  if ok then
    redis.call('DEL', h)
    redis.call('HSET', h, 'state', 'closed', 'changed_at', now, 'failures', 0)
    redis.call('PEXPIRE', h, math.max(window, 60000) * 2)
    return {'closed', 'half_open>closed', '0'}
  end
  redis.call('HINCRBY', h, 'failures', 1)
  return open('half_open')
end
if state == 'open' then return {state, '', '0'} end
local started = tonumber(redis.call('HGET', h, 'window_start') or '0')
if now - started >= window then
  redis.call('HSET', h, 'window_start', now, 'window_calls', 0, 'window_failures', 0)
end
local calls = redis.call('HINCRBY', h, 'window_calls', 1)
redis.call('PEXPIRE', h, math.max(window, 60000) * 2)
if ok then
  redis.call('HSET', h, 'failures', 0)
  return {state, '', '0'}
end
redis.call('SADD', KEYS[2], ARGV[9])
local failures = redis.call('HINCRBY', h, 'failures', 1)
local failed = redis.call('HINCRBY', h, 'window_failures', 1)
if failures >= threshold or (ratio > 0 and calls >= min_calls and failed / calls >= ratio) then
  return open('closed')
end
return {state, '', tostring(failures)}
"""
)

_RELEASE_PROBE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open'
   and redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'probe', 'probe_until', 'probe_deadline')
end
return 1
"""

_FORCE = (
    _NOW
    + """
local h = KEYS[1]
local before = redis.call('HGET', h, 'state') or 'closed'
if ARGV[1] == 'open' then
  local for_ms = tonumber(ARGV[2])
  local till = 0
  if for_ms > 0 then till = now + for_ms end
  redis.call('HSET', h, 'state', 'open', 'open_until', till, 'opened_at', now,
             'changed_at', now, 'by', 'operator')
  redis.call('HDEL', h, 'probe', 'probe_until', 'probe_deadline')
  redis.call('PERSIST', h)
  if for_ms > 0 then redis.call('PEXPIRE', h, for_ms + tonumber(ARGV[3])) end
else
  redis.call('DEL', h)
  redis.call('HSET', h, 'state', 'closed', 'changed_at', now, 'failures', 0, 'by', 'operator')
  redis.call('PEXPIRE', h, 120000)
end
redis.call('SADD', KEYS[2], ARGV[4])
return {before, ARGV[1]}
"""
)


# KEYS: the places; ARGV: the name, max_breakers, the overflow name, idle ms, the prefix of
# the breakers' hashes. The hashes of stale places are read by a name built here: the guard's
# Redis is one server (the broker's), not a cluster.
_PLACE = (
    _NOW
    + """
local places, name, most, overflow = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local idle = tonumber(ARGV[4])
-- Outlives the longest state a breaker it made keeps (an open one: its cooldown and a day).
redis.call('PEXPIRE', places, idle + 3 * 86400000)
if redis.call('ZSCORE', places, name) then
  redis.call('ZADD', places, now, name)
  return name
end
-- One with state and no place: an operator opened (or closed) it by name. It stands.
if redis.call('EXISTS', ARGV[5] .. name) == 1 then return name end
if redis.call('ZCARD', places) >= most then
  local stale = redis.call('ZRANGEBYSCORE', places, '-inf', now - idle, 'LIMIT', 0, 8)
  for _, old in ipairs(stale) do
    if redis.call('EXISTS', ARGV[5] .. old) == 0 then
      redis.call('ZREM', places, old)
    else
      redis.call('ZADD', places, now, old)
    end
  end
  if redis.call('ZCARD', places) >= most then return overflow end
end
redis.call('ZADD', places, now, name)
return name
"""
)

# KEYS: the index, then each name's hash; ARGV: the names. Atomic against _RECORD and _FORCE,
# which write a hash and index its name in one script: a name is never dropped while its
# breaker has state.
_PRUNE = """
local pruned = 0
for i, name in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    pruned = pruned + redis.call('SREM', KEYS[1], name)
  end
end
return pruned
"""
# Names looked at per script call: a long index is pruned in short scripts.
_PRUNE_BATCH = 500


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    state: str
    wait_s: float = 0.0
    """Turned away: how long until the breaker may let a call through (its cooldown's end, or
    the probe's lease)."""
    transition: str = ""


@dataclass(frozen=True)
class BreakerState:
    """What a breaker's hash holds now."""

    name: str
    state: str
    failures: int
    open_for_s: float | None
    """Open: seconds left of its cooldown; 0 once it will let a probe through; None when
    held open by an operator until closed, or not open."""
    changed_at: float | None
    """Unix time of the last transition, if any is kept."""
    by: str | None
    """``failures`` or ``operator``: what last opened or closed it."""
    window_calls: int
    window_failures: int
    kept: bool = True
    """Whether Redis holds any state of it (False: it reads as closed, having none)."""


class Breakers:
    """The fleet's breakers, read and changed through Lua scripts on Redis."""

    def __init__(self, client: redis.Redis | None = None, keeper_tick_s: float = TICK_S) -> None:
        self._client = client
        self._scripts: dict[str, Script] = {}
        self.keeper = LeaseKeeper(lambda: self.client, keeper_tick_s, _RENEW_PROBE, "probe")

    @property
    def client(self) -> redis.Redis:
        return self._client or guard_redis()

    def allow(self, name: str, policy: BreakerPolicy, holder: str, lease_s: float) -> Allowance:
        """Whether a call may go: always while closed; the one probe while half-open. The
        probe's hold is renewed from this process until :meth:`record` or
        :meth:`release_probe`; ``lease_s`` is the longest its call may take (its step's
        lease), which those turned away meanwhile wait for at most."""
        probe_lease_s = min(PROBE_LEASE_S, lease_s)
        args = [
            holder,
            int(probe_lease_s * 1000),
            int(policy.cooldown_s * 1000),
            int(lease_s * 1000),
        ]
        key = self._key(name)
        allowed, state, wait_ms, transition = self._run("allow", _ALLOW, [key], args)
        allowance = Allowance(
            bool(allowed), as_text(state), float(wait_ms) / 1000, as_text(transition)
        )
        if allowance.allowed and allowance.state == HALF_OPEN:
            self.keeper.hold([key], holder, probe_lease_s)
        return allowance

    def record(self, name: str, policy: BreakerPolicy, holder: str, ok: bool) -> str:
        """Count a call's outcome; returns the transition it caused (``closed>open``) or ''."""
        args = [
            holder,
            "1" if ok else "0",
            policy.failures,
            policy.failure_ratio or 0,
            int(policy.window_s * 1000),
            policy.min_calls,
            int(policy.cooldown_s * 1000),
            _OPEN_KEEP_S * 1000,
            name,
        ]
        keys_ = [self._key(name), keys.breaker_index(prefix())]
        self.keeper.drop(holder)  # before: a renewal after the outcome would find no probe
        _, transition, _ = self._run("record", _RECORD, keys_, args)
        return as_text(transition)

    def place(self, name: str, default: BreakerPolicy) -> str:
        """The breaker a call to ``name`` counts in, when the limits file's ``default``
        makes it: ``name`` itself while it has one of ``default.max_breakers`` places (or
        one is free, or can be freed), else its kind's overflow breaker."""
        kind = name.partition(":")[0]
        args = [
            name,
            default.max_breakers,
            overflow_name(kind),
            default.idle_ms,
            self._key(""),
        ]
        placed = self._run("place", _PLACE, [keys.breaker_places(prefix())], args)
        return as_text(placed)

    def places(self) -> set[str]:
        """The names that hold a place among ``default``'s breakers (for tests and status)."""
        try:
            return {as_text(n) for n in self.client.zrange(keys.breaker_places(prefix()), 0, -1)}
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def release_probe(self, name: str, holder: str) -> None:
        """A probe that never made its call (another limit turned it away) lets another go."""
        self.keeper.drop(holder)
        self._run("release", _RELEASE_PROBE, [self._key(name)], [holder])

    def force(self, name: str, state: str, for_s: float | None = None) -> tuple[str, str]:
        """An operator's open (for ``for_s``, or until closed) or close; returns (before, after)."""
        keys_ = [self._key(name), keys.breaker_index(prefix())]
        args = [state, int((for_s or 0) * 1000), _OPEN_KEEP_S * 1000, name]
        before, after = self._run("force", _FORCE, keys_, args)
        return as_text(before), as_text(after)

    def read(self, names: list[str]) -> dict[str, BreakerState]:
        """The state of each of ``names`` (closed, with no count, when Redis holds none)."""
        try:
            now_s, now_us = self.client.time()
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._key(name))
                found = pipe.execute()
        except redis.RedisError as exc:
            raise unavailable(exc) from exc
        now_ms = now_s * 1000 + now_us // 1000
        return {name: _state(name, raw, now_ms) for name, raw in zip(names, found, strict=True)}

    def known(self) -> set[str]:
        """Breakers that have had state in Redis (the index may name some since expired)."""
        try:
            return {as_text(n) for n in self.client.smembers(keys.breaker_index(prefix()))}
        except redis.RedisError as exc:
            raise unavailable(exc) from exc

    def prune(self) -> int:
        """Take out of the index the breakers that have no state left (their hash expired:
        closed, and idle for longer than it is kept); how many."""
        index = keys.breaker_index(prefix())
        names = sorted(self.known())
        pruned = 0
        for start in range(0, len(names), _PRUNE_BATCH):
            batch = names[start : start + _PRUNE_BATCH]
            keys_ = [index, *(self._key(name) for name in batch)]
            pruned += int(self._run("prune", _PRUNE, keys_, list(batch)))
        return pruned

    def _key(self, name: str) -> str:
        return keys.breaker_key(prefix(), name)

    def _run(self, which: str, source: str, keys_: list[str], args: list[Any]) -> Any:
        script = self._scripts.get(which)
        if script is None:
            script = self._scripts[which] = self.client.register_script(source)
        try:
            return script(keys_, args)
        except redis.RedisError as exc:
            raise unavailable(exc) from exc


def _state(name: str, raw: dict[Any, Any], now_ms: int) -> BreakerState:
    fields = {as_text(k): as_text(v) for k, v in raw.items()}
    state = fields.get("state", CLOSED)
    open_for: float | None = None
    if state == OPEN:
        till = float(fields.get("open_until", "0"))
        open_for = None if till == 0 else max(till - now_ms, 0.0) / 1000
    changed = fields.get("changed_at")
    return BreakerState(
        name=name,
        state=state,
        failures=int(fields.get("failures", "0")),
        open_for_s=open_for,
        changed_at=float(changed) / 1000 if changed else None,
        by=fields.get("by"),
        window_calls=int(fields.get("window_calls", "0")),
        window_failures=int(fields.get("window_failures", "0")),
        kept=bool(fields),
    )


def gauge_value(state: BreakerState) -> int:
    """``hive_breaker_state``: 0 closed, 1 half-open (or open past its cooldown: the next
    call probes), 2 open."""
    if state.state == OPEN and state.open_for_s == 0:
        return GAUGE_VALUE[HALF_OPEN]
    return GAUGE_VALUE.get(state.state, 0)


def record_transition(name: str, transition: str, **detail: Any) -> None:
    """A ``breaker`` event in PostgreSQL and a log line. The event is worth little against a
    step's progress: if PostgreSQL cannot take it now, it is logged and dropped."""
    before, _, after = transition.partition(">")
    logger.warning("breaker %s: %s -> %s", name, before, after)
    body = {"breaker": name, "from": before, "to": after, **detail}
    try:
        in_transaction(lambda conn: event_log.record(conn, "breaker", body), retry_s=1)
    except HiveError as exc:
        logger.warning("breaker %s: transition not recorded as an event: %s", name, exc)


def overflow_name(kind: str) -> str:
    """The breaker shared by ``kind``'s names past the default's ``max_breakers``."""
    return f"{kind}:{OVERFLOW}"


def breaker_name(kind: str, name: str) -> str:
    """The breaker of a resource: ``service:NAME``, or for a model ``provider:PROVIDER``."""
    if kind == "model":
        return f"provider:{name.split(':', 1)[0]}"
    return f"service:{name}"
