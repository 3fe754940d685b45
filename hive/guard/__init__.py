"""The guard: fleet-wide rate and concurrency limits and circuit breakers on what steps do
and call, declared in one limits file (``HIVE_LIMITS_FILE``) and shared by every worker
through Redis.

::

    policy      the limits file: its format, validation, and the copy each process reads
    admission   a step's admission (agent, tenant) and ctx.call's (service, model, breaker)
    rates       rate limits: GCRA in a Lua script, with slots booked for deferred steps
    slots       concurrency limits: a semaphore of leases that expire
    keeper      renews the leases this process holds while their holders run
    breakers    circuit breakers: state, transitions, events
    store       the Redis client and key prefix they share
    budgets     cost budgets: a step's estimated cost reserved in PostgreSQL before its
                agent runs, settled after (SQL in hive.db.budgets)

The step task calls :func:`admit_step` between resolving a step's input and running its
agent, and gives the agent :class:`FarmCalls` as ``ctx.call``; both raise
:class:`~hive.errors.StepDeferred` when the step must wait. Once admitted, a step's
estimated cost is reserved (:func:`hive.guard.budgets.reserve_step`, raising
:class:`~hive.errors.BudgetExceeded` when a budget has no room for it). The service layer reads and
operates the breakers (``hive breakers``); ``hive exporter`` reads their states.
"""

from hive.guard.admission import Admission, FarmCalls, StepInfo, admit_step
from hive.guard.breakers import (
    Breakers,
    BreakerState,
    breaker_name,
    gauge_value,
    record_transition,
)
from hive.guard.policy import (
    EMPTY,
    BreakerPolicy,
    LimitEntry,
    Policy,
    Rate,
    check_limits_file,
    current_policy,
    load_policy,
    parse_policy,
    parse_rate,
)

__all__ = [
    "EMPTY",
    "Admission",
    "BreakerPolicy",
    "BreakerState",
    "Breakers",
    "FarmCalls",
    "LimitEntry",
    "Policy",
    "Rate",
    "StepInfo",
    "admit_step",
    "breaker_name",
    "check_limits_file",
    "current_policy",
    "gauge_value",
    "load_policy",
    "parse_policy",
    "parse_rate",
    "record_transition",
]
