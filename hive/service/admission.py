"""Admission control of the HTTP API: each tenant's request rate, shared by every API
process through Redis, and its cap on runs in flight, checked when it submits.

The rate is the guard's GCRA limiter (:mod:`hive.guard.rates`), asked never to book a slot:
an HTTP caller is answered at once, with when to come back, rather than deferred. The
operator's all-tenant keys share one limit of their own.

The cap counts the tenant's unfinished runs before the run is stored, outside the insert's
transaction: submits of one tenant racing each other may pass it by as many as race.
Holding a tenant's submits in line (an advisory lock) would cost every submit a round trip
to keep a bound that is about load, not correctness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hive.db import in_flight
from hive.db.retrying import Connection, in_autocommit
from hive.errors import TooManyRequests, TooManyRunsInFlight
from hive.guard.rates import RateLimiter, requests_limit
from hive.service.caller import Caller
from hive.service.farm import operation
from hive.settings import Settings

_limiter = RateLimiter()


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
    limit = requests_limit(_entry(caller), 1.0 / rate, settings.api.request_burst)
    decision = _limiter.admit([limit], "api", book=False)
    backlog_s = decision.backlogs_s[0] if decision.backlogs_s else 0.0
    burst, reset_s = settings.api.request_burst, math.ceil(backlog_s)
    if not decision.admitted:
        raise TooManyRequests(decision.wait_s, limit=burst, reset_s=reset_s)
    return RateAllowance(burst, limit.remaining(backlog_s), reset_s)


def check_runs_in_flight(tenant: str | None, cap: int, idempotency_key: str | None) -> None:
    """Raises TooManyRunsInFlight when ``tenant`` has ``cap`` unfinished runs, unless its
    ``idempotency_key`` already started a run (the submit then answers that run)."""

    def over(conn: Connection) -> bool:
        if in_flight.count_in_flight(conn, tenant, up_to=cap) < cap:
            return False
        if idempotency_key is None:
            return True
        return in_flight.run_by_key(conn, tenant, idempotency_key) is None

    # Reads alone: no transaction round trips around them.
    if in_autocommit(over, retry_s=0):
        raise TooManyRunsInFlight(tenant, cap)
