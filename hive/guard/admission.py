"""Admission: what the step task asks before a step runs, and ``ctx.call`` before each call.

A step is admitted against its agent's and its tenant's limits (``agent:NAME``,
``tenant:NAME`` or ``tenant:default``) before its agent runs; each outside call against its
service's or model's limits (``service:NAME``; ``model:PROVIDER:MODEL`` and
``model:PROVIDER``) and breaker (``service:NAME``, ``provider:PROVIDER``) around the call.
Turned away, either raises :class:`~hive.errors.StepDeferred` with the time the step may
go (or, for an open breaker whose policy says so, :class:`~hive.errors.BreakerOpen`, or
:class:`~hive.errors.ApprovalRequired` to hold the step for a person: once approved, the
step waits for that breaker as with ``defer``).

Order matters when several things must agree: the breaker first (it spends nothing but a
probe), then concurrency slots (given back if what follows says no), then rate limits
(spent, or a slot booked, only when everything else said yes).

Nothing of this touches Redis when the limits file names nothing that applies.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

from hive.agents.base import CallTicket, Resource
from hive.db import approvals
from hive.db.retrying import in_transaction
from hive.errors import ApprovalRequired, BreakerOpen, HiveError, StepDeferred
from hive.guard import rates, slots
from hive.guard.breakers import OPEN, Breakers, breaker_name, record_transition
from hive.guard.policy import BreakerPolicy, LimitEntry, Policy, current_policy

logger = logging.getLogger(__name__)

# The longest a step's call may take: past its hard time limit (its timeout plus 5 s). Those
# a half-open breaker turns away wait at most this for its probe's call.
_LEASE_MARGIN_S = 10.0
# The source of an approval asked for by an open breaker (``on_open: escalate``).
ESCALATED = "breaker"
# The least countdown of a deferral: below it, a step comes back before anything changed.
_MIN_COUNTDOWN_S = 0.05

_semaphore = slots.Semaphore()
_limiter = rates.RateLimiter()
_breakers = Breakers()


@dataclass(frozen=True)
class StepInfo:
    """What the guard knows of the step it admits."""

    run_id: str
    step_id: str
    attempt: int
    agent: str
    tenant: str | None
    timeout_s: float
    worker: str = "?"

    @property
    def holder(self) -> str:
        """The step across its attempts: a booked rate slot waits for whichever comes back."""
        return f"{self.run_id}:{self.step_id}"

    @property
    def lease_s(self) -> float:
        """The longest the step, or a call of it, may run (a slot's lease is not this, but
        the short one its process renews: :mod:`hive.guard.keeper`)."""
        return self.timeout_s + _LEASE_MARGIN_S


def _limits_of(
    entries: list[tuple[str, LimitEntry]], tokens: float | None = None
) -> tuple[list[slots.ConcurrencyLimit], list[rates.RateLimit]]:
    concurrency, rate_limits = [], []
    for key, entry in entries:
        if entry.concurrency:
            concurrency.append(slots.ConcurrencyLimit(key, entry.concurrency))
        requests = entry.requests
        if requests is not None:
            rate_limits.append(rates.requests_limit(key, requests.interval_s, entry.burst))
        if entry.tokens_per_minute and tokens is not None:
            rate_limits.append(rates.tokens_limit(key, entry.tokens_per_minute, tokens))
    return concurrency, rate_limits


def _found(policy: Policy, keys: list[str]) -> list[tuple[str, LimitEntry]]:
    found = []
    for key in keys:
        entry = policy.limit(key)
        if entry is not None:
            found.append((key, entry))
    return found


def _take(
    concurrency: list[slots.ConcurrencyLimit],
    rate_limits: list[rates.RateLimit],
    slot_holder: str,
    rate_holder: str,
    waiter: str,
) -> None:
    """Take the slots, then the rates; all or nothing, else StepDeferred. ``waiter`` names
    the step (or its call) across attempts, whose denials in a row lengthen its wait."""
    taken = _semaphore.acquire(concurrency, slot_holder, waiter=waiter)
    if not taken.acquired:
        assert taken.limit is not None
        raise StepDeferred(
            f"concurrency limit {taken.limit.entry} ({taken.limit.limit} at once)",
            max(slots.countdown_s(taken), _MIN_COUNTDOWN_S),
            "concurrency",
        )
    try:
        decision = _limiter.admit(rate_limits, rate_holder)
    except BaseException:
        _semaphore.release(concurrency, slot_holder)
        raise
    if not decision.admitted:
        _semaphore.release(concurrency, slot_holder)
        assert decision.limit is not None
        raise StepDeferred(
            f"rate limit {decision.limit.entry} ({decision.limit.measure})",
            max(rates.countdown_s(decision), _MIN_COUNTDOWN_S),
            "rate_limit",
        )


class Admission:
    """A step's hold on its agent and tenant slots: given back when the block ends, or, for
    an agent abandoned at its deadline (``--pool threads``), when that agent's thread ends."""

    __slots__ = ("_concurrency", "_handed_over", "_holder")

    def __init__(self, concurrency: list[slots.ConcurrencyLimit], holder: str) -> None:
        self._concurrency = concurrency
        self._holder = holder
        self._handed_over = False

    def release_when(self, register: Callable[[Callable[[], None]], None]) -> None:
        """Keep the slots past the block: ``register`` calls back when the agent has ended
        (the slots' leases are renewed meanwhile by :mod:`hive.guard.keeper`)."""
        if self._concurrency:
            self._handed_over = True
            register(self.release)

    def release(self) -> None:
        _semaphore.release(self._concurrency, self._holder)

    def _leave(self) -> None:
        if not self._handed_over:
            self.release()


_UNLIMITED = Admission([], "")
# What admit_step gives a step no limit applies to (most steps, every step of a farm
# without a limits file): no generator to make and run on every step. Reusable.
_ADMITTED_UNLIMITED = contextlib.nullcontext(_UNLIMITED)


def admit_step(
    info: StepInfo, policy: Policy | None = None
) -> contextlib.AbstractContextManager[Admission]:
    """Hold the step's agent and tenant limits while its agent runs, or raise StepDeferred
    (on entering the block)."""
    policy = current_policy() if policy is None else policy
    if not policy.limits:
        return _ADMITTED_UNLIMITED
    keys = [f"agent:{info.agent}"]
    if info.tenant is not None:
        keys.append(f"tenant:{info.tenant}")
    entries = _found(policy, keys)
    if not entries:
        return _ADMITTED_UNLIMITED
    return _admitted(info, entries)


@contextlib.contextmanager
def _admitted(info: StepInfo, entries: list[tuple[str, LimitEntry]]) -> Iterator[Admission]:
    concurrency, rate_limits = _limits_of(entries)
    slot_holder = f"{info.holder}:{info.attempt}"
    _take(concurrency, rate_limits, slot_holder, info.holder, info.holder)
    admission = Admission(concurrency, slot_holder)
    try:
        yield admission
    finally:
        admission._leave()


def _approved(info: StepInfo) -> bool:
    """Whether a person let the step go on despite an open breaker: it then waits as with
    ``on_open: defer`` rather than asking again."""
    run_id = uuid.UUID(info.run_id)
    return in_transaction(
        lambda conn: approvals.granted(conn, run_id, info.step_id, source=ESCALATED)
    )


class FarmCalls:
    """``ctx.call`` in the farm: the :class:`~hive.agents.base.CallGuard` of one step."""

    def __init__(self, info: StepInfo, policy: Policy | None = None) -> None:
        self._info = info
        self._policy = policy

    def __call__(self, resource: Resource) -> contextlib.AbstractContextManager[CallTicket]:
        policy = current_policy() if self._policy is None else self._policy
        return _Call(self._info, resource, policy)


@dataclass
class _Ticket:
    """What an agent holds during one call: token corrections, a failure said aloud."""

    token_limits: list[rates.RateLimit] = field(default_factory=list)
    estimate: float = 0.0
    said_failed: bool = False

    def used_tokens(self, tokens: int) -> None:
        for limit in self.token_limits:
            _limiter.correct(limit, float(tokens) - self.estimate)
        self.estimate = float(tokens)

    def failed(self) -> None:
        self.said_failed = True


class _Call:
    def __init__(self, info: StepInfo, resource: Resource, policy: Policy) -> None:
        self._info = info
        self._resource = resource
        self._policy = policy
        self._holder = f"{info.holder}:{info.attempt}:{uuid.uuid4().hex[:8]}"
        self._breaker = breaker_name(resource.kind, resource.name)
        self._breaker_policy: BreakerPolicy | None = (
            policy.breaker(self._breaker) if policy.breakers else None
        )
        self._concurrency: list[slots.ConcurrencyLimit] = []
        self._ticket = _Ticket()

    def _keys(self) -> list[str]:
        kind, name = self._resource.kind, self._resource.name
        if kind == "model":
            provider = name.split(":", 1)[0]
            return [f"model:{name}"] if provider == name else [f"model:{name}", f"model:{provider}"]
        return [f"service:{name}"]

    def __enter__(self) -> CallTicket:
        if self._breaker_policy is not None and self._policy.made_by_default(self._breaker):
            # One of the default's places, or the overflow breaker its kind shares.
            self._breaker = _breakers.place(self._breaker, self._breaker_policy)
            self._breaker_policy = self._policy.breaker(self._breaker)
        info, breaker, bp = self._info, self._breaker, self._breaker_policy
        if bp is not None:
            allowance = _breakers.allow(breaker, bp, self._holder, info.lease_s)
            if allowance.transition:
                record_transition(breaker, allowance.transition, worker=info.worker)
            if not allowance.allowed:
                if bp.on_open == "fail":
                    raise BreakerOpen(breaker, allowance.wait_s)
                if bp.on_open == "escalate" and allowance.state == OPEN and not _approved(info):
                    # Half-open, a probe is out and decides soon: the step just waits.
                    raise ApprovalRequired(
                        f"breaker {breaker} is open (on_open: escalate)", source=ESCALATED
                    )
                reason = f"breaker {breaker} is {allowance.state.replace('_', '-')}"
                raise StepDeferred(reason, max(allowance.wait_s, _MIN_COUNTDOWN_S), "breaker")
        entries = _found(self._policy, self._keys()) if self._policy.limits else []
        if entries:
            tokens = float(max(self._resource.tokens, 0))
            self._concurrency, rate_limits = _limits_of(entries, tokens)
            self._ticket = _Ticket([r for r in rate_limits if r.measure == "tokens"], tokens)
            try:
                waiter = f"{info.holder}:{self._resource.kind}:{self._resource.name}"
                _take(self._concurrency, rate_limits, self._holder, info.holder, waiter)
            except BaseException:
                if bp is not None:
                    _breakers.release_probe(breaker, self._holder)
                raise
        return self._ticket

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _semaphore.release(self._concurrency, self._holder)
        bp = self._breaker_policy
        if bp is None:
            return
        if isinstance(exc, StepDeferred):
            # Another resource's limit, inside this call's block: no word on this one.
            _breakers.release_probe(self._breaker, self._holder)
            return
        ok = exc is None and not self._ticket.said_failed
        try:
            transition = _breakers.record(self._breaker, bp, self._holder, ok)
        except HiveError as error:
            # The call's own outcome stands; one count less for the breaker.
            logger.warning("breaker %s: outcome not counted: %s", self._breaker, error)
            return
        if transition:
            record_transition(self._breaker, transition, worker=self._info.worker)
