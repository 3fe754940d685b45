"""Every Redis key, queue name and task name Hive uses, each built by one function."""

from __future__ import annotations

DEFAULT_QUEUE = "hive.default"
MAINTENANCE_QUEUE = "hive.maintenance"

# Task names are stable strings: moving code never breaks queued messages.
RUN_STEP_TASK = "hive.tasks.run_step"
RECOVER_TASK = "hive.beat.recover_stalled_runs"
PURGE_TASK = "hive.beat.purge_retention"
HEALTH_TASK = "hive.beat.health_sweep"
CLEANUP_TASK = "hive.beat.cleanup_services"
APPROVALS_TASK = "hive.beat.expire_approvals"


_STEP_TASK_PREFIX = "hive.step."


def step_task_name(agent: str) -> str:
    """The name a step shows under in Flower and in Celery's own log lines (the message's
    ``shadow``): its agent's. The task that runs it stays :data:`RUN_STEP_TASK`."""
    return f"{_STEP_TASK_PREFIX}{agent}"


def step_task_agent(name: str) -> str | None:
    """The agent a :func:`step_task_name` names; None for any other name."""
    agent = name.removeprefix(_STEP_TASK_PREFIX)
    return agent if agent != name and agent else None


def agent_queue(name: str | None) -> str:
    """The Celery queue an agent's steps go to."""
    return name or DEFAULT_QUEUE


def maintenance_lock(prefix: str, task: str) -> str:
    """Redis lock held while one beat maintenance task runs."""
    return f"{prefix}:lock:{task}"


def broker_epoch(prefix: str) -> str:
    """Marker key whose disappearance means the broker lost its data."""
    return f"{prefix}:broker-epoch"


def database_epoch(prefix: str) -> str:
    """When PostgreSQL last started, as recovery last saw it."""
    return f"{prefix}:database-epoch"


# Redis emulates priorities with one list per step; 0 is served first. A run's priority by
# name, as producers give it, to the step its messages carry.
PRIORITIES: dict[str, int] = {"critical": 0, "high": 3, "normal": 6, "low": 9}

# kombu's Redis transport keeps one list per priority step: the queue's own name for step
# 0, the name, this separator and the step for the others (its Channel._q_for_pri).
_KOMBU_PRIORITY_SEP = "\x06\x16"


def priority_list(queue: str, step: int) -> str:
    """The Redis list that holds ``queue``'s messages of priority step ``step``."""
    return f"{queue}{_KOMBU_PRIORITY_SEP}{step}" if step else queue


# The guard's keys (hive/guard): fleet-wide limits and breakers, all under the farm's prefix.
# ``entry`` is a policy key as the limits file writes it (``service:partner``,
# ``model:openai:gpt-4o``); ``holder`` names a step (``<run id>:<step id>``).


def rate_key(prefix: str, entry: str, measure: str) -> str:
    """A rate limit's state (GCRA's theoretical arrival time); ``measure`` is ``requests``
    or ``tokens``."""
    return f"{prefix}:rate:{measure}:{entry}"


def rate_reservation(prefix: str, entry: str, measure: str, holder: str) -> str:
    """A slot of that rate limit reserved for a deferred step, holding when it falls due."""
    return f"{prefix}:rate:{measure}:{entry}:held:{holder}"


def concurrency_key(prefix: str, entry: str) -> str:
    """A concurrency limit's leases: a sorted set of holder → lease expiry."""
    return f"{prefix}:slots:{entry}"


def concurrency_waiters(prefix: str, entry: str) -> str:
    """How often each step waiting for that concurrency limit was turned away in a row."""
    return f"{prefix}:slots:{entry}:waiting"


def breaker_key(prefix: str, name: str) -> str:
    """A circuit breaker's state (a hash); ``name`` is ``service:NAME`` or ``provider:NAME``."""
    return f"{prefix}:breaker:{name}"


def breaker_index(prefix: str) -> str:
    """The set of breaker names that have state, for listing them."""
    return f"{prefix}:breakers"


def breaker_places(prefix: str) -> str:
    """The breakers the limits file's ``default`` made (a sorted set, name -> last use, ms),
    at most its ``max_breakers``."""
    return f"{prefix}:breakers:default"


def key_revocations(prefix: str, db: int) -> str:
    """The pub/sub channel a revoked API key's id is published on, for every `hive api`
    process to drop its record of that key at once (never the key nor its hash). Pub/sub
    is server-wide, blind to the database index that keeps farms sharing a Redis server
    apart, so the farm's index ``db`` is in the name, as kombu puts it in its fanout
    channels'."""
    return f"{prefix}:api-keys:revoked:{db}"
