"""The fleet's circuit breakers, as an operator or an admin sees and works them:
``hive breakers list|show|open|close``.

A breaker is named ``service:NAME`` or ``provider:NAME`` (a bare ``NAME`` is a service's).
Its policy comes from the limits file the caller's settings name (``HIVE_LIMITS_FILE``, read
afresh), its state from Redis. Opening or closing one records a ``breaker`` event, as a
worker's transition does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hive.errors import InvalidArgument, UnknownBreaker
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings

# The guard (and Redis) is imported by the operations that read or change a breaker: the
# service package is imported by every command, most of which never touch one.
if TYPE_CHECKING:
    from hive.guard import BreakerPolicy, BreakerState, Policy

OPEN_FOR_MAX_S = 30 * 86400.0
"""The longest an operator opens a breaker for; longer is a typo (``until closed`` is
what opening without ``for_s`` means), and far longer overflows Redis's expiry."""


@dataclass(frozen=True)
class BreakerView:
    """A breaker's state and the policy it follows."""

    name: str
    kind: str
    """``service`` or ``provider``."""
    state: str
    """``closed``, ``half_open`` or ``open``."""
    open_for_s: float | None
    """Open: seconds left of its cooldown (0: the next call probes); None when held open
    until closed, or not open."""
    failures: int
    """Failures in a row, as the breaker counts them."""
    window_calls: int
    window_failures: int
    changed_at: datetime | None
    by: str | None
    """What last opened or closed it: ``failures`` or ``operator``."""
    policy: BreakerPolicy | None
    """None for a breaker with state in Redis that the limits file no longer declares."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "open_for_s": None if self.open_for_s is None else round(self.open_for_s, 3),
            "failures": self.failures,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "by": self.by,
            # max_breakers is the default's, not this breaker's.
            "policy": None
            if self.policy is None
            else self.policy.model_dump(exclude={"max_breakers"}),
        }


def _policy(settings: Settings) -> Policy:
    from hive.guard import EMPTY, load_policy

    path = settings.guard.limits_file
    return EMPTY if path is None else load_policy(path)


def breaker_name(text: str) -> str:
    """``service:NAME`` or ``provider:NAME``; a bare name is a service's.

    Raises:
        InvalidArgument: another kind, or no name.
    """
    kind, sep, name = text.partition(":")
    if not sep:
        kind, name = "service", text
    if kind not in ("service", "provider") or not name.strip() or ":" in name:
        raise InvalidArgument(
            [f"breaker {text!r}: a breaker is service:NAME or provider:NAME (or a bare NAME)"]
        )
    return f"{kind}:{name}"


def _views(policy: Policy, names: list[str]) -> list[BreakerView]:
    from hive.guard import Breakers

    states = Breakers().read(names)
    return [_view(states[name], policy.breaker(name)) for name in names]


def _view(state: BreakerState, policy: BreakerPolicy | None) -> BreakerView:
    changed = (
        datetime.fromtimestamp(state.changed_at, UTC) if state.changed_at is not None else None
    )
    return BreakerView(
        name=state.name,
        kind=state.name.partition(":")[0],
        state=state.state,
        open_for_s=state.open_for_s,
        failures=state.failures,
        window_calls=state.window_calls,
        window_failures=state.window_failures,
        changed_at=changed,
        by=state.by,
        policy=policy,
    )


@operation
def list_breakers(settings: Settings, caller: Caller) -> list[BreakerView]:
    """Every breaker the limits file names, and every other one with state in Redis (made
    by the file's ``default``, or no longer declared), by name. An undeclared one whose
    state expired (closed and idle) is left out, though its name stays in Redis's index
    until beat's cleanup prunes it.

    Raises:
        PermissionDenied: the caller is neither an admin nor the operator.
        LimitsFileError: the limits file is invalid.
    """
    caller.require(Right.BREAKERS)
    from hive.guard import Breakers

    policy = _policy(settings)
    declared = set(policy.breaker_names())
    names = sorted(declared | Breakers().known())
    states = Breakers().read(names)
    return [
        _view(states[name], policy.breaker(name))
        for name in names
        if name in declared or states[name].kept
    ]


@operation
def get_breaker(settings: Settings, caller: Caller, name: str) -> BreakerView:
    """One breaker.

    Raises:
        UnknownBreaker: the limits file has no policy for it and Redis no state.
    """
    caller.require(Right.BREAKERS)
    from hive.guard import Breakers

    policy, name = _policy(settings), breaker_name(name)
    if policy.breaker(name) is None and name not in Breakers().known():
        raise UnknownBreaker(name, policy.breaker_names())
    (view,) = _views(policy, [name])
    return view


@operation
def open_breaker(
    settings: Settings, caller: Caller, name: str, *, for_s: float | None = None
) -> BreakerView:
    """Open a breaker: calls through it are turned away (deferred, failed with
    ``on_open: fail``, or held for a person with ``on_open: escalate``) for ``for_s``
    seconds, then one probe decides; without ``for_s``, until :func:`close_breaker`.

    Raises:
        UnknownBreaker: the limits file declares no breaker that applies to it.
        InvalidArgument: ``for_s`` is not above 0, or above :data:`OPEN_FOR_MAX_S`.
    """
    caller.require(Right.BREAKERS)
    if for_s is not None and not 0 < for_s <= OPEN_FOR_MAX_S:
        raise InvalidArgument(
            [f"for_s: {for_s:g}s must be above 0 and at most 30d ({OPEN_FOR_MAX_S:g}s)"]
        )
    return _force(settings, name, "open", for_s)


@operation
def close_breaker(settings: Settings, caller: Caller, name: str) -> BreakerView:
    """Close a breaker: calls go through again, its failure count starts from 0.

    Raises:
        UnknownBreaker: the limits file declares no breaker that applies to it.
    """
    caller.require(Right.BREAKERS)
    return _force(settings, name, "closed", None)


def _force(settings: Settings, name: str, state: str, for_s: float | None) -> BreakerView:
    from hive.guard import Breakers, record_transition

    policy, name = _policy(settings), breaker_name(name)
    if policy.breaker(name) is None:
        raise UnknownBreaker(name, policy.breaker_names())
    before, after = Breakers().force(name, state, for_s)
    if before != after:
        record_transition(name, f"{before}>{after}", by="operator", for_s=for_s)
    (view,) = _views(policy, [name])
    return view
