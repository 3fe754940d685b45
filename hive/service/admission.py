"""Admission control of the HTTP API: each tenant's request rate, shared by every API
process through Redis, and its cap on runs in flight, checked when it submits; and each
client address's failed authentications, which it must spend before a key is looked up.

The rate is the guard's GCRA limiter (:mod:`hive.guard.rates`), asked never to book a slot:
an HTTP caller is answered at once, with when to come back, rather than deferred. The
operator's all-tenant keys share one limit of their own.

A key must be read from PostgreSQL to know its tenant, so the tenant's rate cannot guard
that read: a flood of made-up keys would be a flood of queries. Each failed authentication
of a well-formed key therefore spends one of its client address's allowance (the same limiter,
``HIVE_API_AUTH_FAILURE_BURST`` at once, ``HIVE_API_AUTH_FAILURES_PER_S`` after), and a key
to be looked up must find that allowance not spent; only failures spend it, so a client
whose keys are good is never held back by its own requests.

The cap on runs in flight is kept by the submit itself (``max_in_flight``): the insert
counts the tenant's unfinished runs under a lock of the tenant's (:func:`hive.db.runs.insert_run`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hive.errors import TooManyRequests
from hive.service.caller import Caller
from hive.service.farm import operation
from hive.settings import Settings

if TYPE_CHECKING:
    from hive.guard.rates import RateLimit, RateLimiter


@functools.cache
def _limiter() -> RateLimiter:
    # Imported on first use: redis and the guard stay out of the commands that never admit.
    from hive.guard.rates import RateLimiter

    return RateLimiter()


@dataclass(frozen=True)
class RateAllowance:
    """What a caller is told of its rate limit (the ``RateLimit-*`` headers)."""

    limit: int
    """The requests it may make at once, idle."""
    remaining: int
    """The requests it may make now."""
    reset_s: int
    """Seconds until its whole allowance is back."""

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


def _entry(caller: Caller) -> str:
    return "api:operator" if caller.tenant is None else f"api:tenant:{caller.tenant}"


@operation
def admit_request(settings: Settings, caller: Caller) -> RateAllowance | None:
    """Spend one of the caller's tenant's requests; None when no rate is set.

    Raises:
        TooManyRequests: the rate is spent; ``retry_after_s`` says when one fits again.
        ServiceUnavailable: Redis cannot be reached.
    """
    rate = settings.api.requests_per_s
    if rate <= 0:
        return None
    from hive.guard.rates import requests_limit

    limit = requests_limit(_entry(caller), 1.0 / rate, settings.api.request_burst)
    decision = _limiter().admit([limit], "api", book=False)
    backlog_s = decision.backlogs_s[0] if decision.backlogs_s else 0.0
    burst, reset_s = settings.api.request_burst, math.ceil(backlog_s)
    if not decision.admitted:
        raise TooManyRequests(decision.wait_s, limit=burst, reset_s=reset_s)
    return RateAllowance(burst, limit.remaining(backlog_s), reset_s)


def _failures_limit(settings: Settings, client: str) -> RateLimit | None:
    rate = settings.api.auth_failures_per_s
    if rate <= 0:
        return None
    from hive.guard.rates import requests_limit

    return requests_limit(f"api:client:{client}", 1.0 / rate, settings.api.auth_failure_burst)


@operation
def admit_authentication(settings: Settings, client: str) -> None:
    """Let a key from ``client`` (its address) be looked up, unless the address has spent
    its failed authentications; spends nothing (a failure does: :func:`failed_authentication`).

    Raises:
        TooManyRequests: the address failed too often; ``retry_after_s`` says when it may
            try again.
        ServiceUnavailable: Redis cannot be reached.
    """
    limit = _failures_limit(settings, client)
    if limit is None:
        return
    # A look at the limit, costing nothing: refused once one more failure would not fit,
    # that is with a tolerance of one failure less than the burst.
    look = replace(limit, burst=limit.burst - 1, cost=0.0)
    decision = _limiter().admit([look], "api", book=False)
    if not decision.admitted:
        wait_s = decision.wait_s
        raise TooManyRequests(
            wait_s,
            "too many failed authentications from this address; "
            f"try again in {max(math.ceil(wait_s), 1)}s",
        )


@operation
def failed_authentication(settings: Settings, client: str) -> None:
    """Spend one of ``client``'s failed authentications, if one is left: failures past the
    allowance (of keys never looked up) do not push its end further off.

    Raises:
        ServiceUnavailable: Redis cannot be reached.
    """
    limit = _failures_limit(settings, client)
    if limit is not None:
        _limiter().admit([limit], "api", book=False)
