"""Beat maintenance tasks. Each takes a Redis lock, so two beats (or an operator's
``hive maintenance`` next to a beat) never run the same maintenance at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from hive import keys
from hive.beat import health, lock, recovery
from hive.db import api_keys as key_store
from hive.db import events as event_log
from hive.db import sweeps
from hive.db.retrying import Connection, in_transaction, waiting_at_most
from hive.errors import ServiceUnavailable, StatementCanceled
from hive.guard import Breakers
from hive.logs import log_context
from hive.settings import RetentionSettings, get_settings
from hive.tasks import approvals
from hive.tasks.app import app

logger = logging.getLogger(__name__)

# How long a maintenance task sent by beat waits for an unreachable database before it
# skips: long enough for the immediate retry that a pooled connection dropped by a restart
# needs, shorter than any interval. Beat sends the next one anyway, and maintenance goes
# before steps (its messages have the top priority), so a task waiting out an outage
# (HIVE_DB_RETRY_S) every interval would keep a step's message from its worker slot.
PERIODIC_DB_WAIT_S = 0.5


def recover_now() -> dict[str, Any] | None:
    """One recovery sweep; None if another one is running."""
    ttl = max(get_settings().recovery.interval_s * 4, 60.0)
    with log_context(task=keys.RECOVER_TASK):
        return lock.run_exclusively("recover", ttl, _logged("recover", _recover))


def _recover(client: redis.Redis) -> dict[str, Any]:
    return recovery.recover(client).as_dict()


# Audit records deleted per transaction: a trail of millions is purged in short
# transactions, none holding its rows (or a replica's apply) for long.
AUDIT_PURGE_BATCH = 5000
# Runs (each with its steps, attempts and events) and events deleted per transaction.
RUN_PURGE_BATCH = 1000
EVENT_PURGE_BATCH = 5000


def purge_now() -> dict[str, Any] | None:
    """Delete what is older than ``HIVE_RETENTION_DAYS`` (audit records: older than
    ``HIVE_AUDIT_RETENTION_DAYS``); None if another purge is running."""
    retention = get_settings().retention
    with log_context(task=keys.PURGE_TASK):
        return lock.run_exclusively("purge", 3600.0, _logged("purge", lambda _: _purge(retention)))


def _purge(retention: RetentionSettings) -> dict[str, Any]:
    days, audit_days = retention.days, retention.audit_days
    runs = _in_batches("runs", lambda c, n: sweeps.purge_runs_batch(c, days, n), RUN_PURGE_BATCH)
    events = _in_batches(
        "events", lambda c, n: sweeps.purge_events_batch(c, days, n), EVENT_PURGE_BATCH
    )
    registry = in_transaction(lambda c: _counted(c, sweeps.purge_registry(c, days)))
    audit = _in_batches(
        "audit", lambda c, n: key_store.purge_audit_batch(c, audit_days, n), AUDIT_PURGE_BATCH
    )
    return {"runs": runs, "events": events, **registry, "audit": audit}


def _counted(conn: Connection, counts: dict[str, Any]) -> dict[str, Any]:
    sweeps.count_purged(conn, counts)
    return counts


def _count_batch(conn: Connection, kind: str, deleted: int) -> int:
    sweeps.count_purged(conn, {kind: deleted})
    return deleted


def _in_batches(kind: str, delete: Callable[[Connection, int], int], batch: int) -> int:
    """Run ``delete`` (at most ``batch`` rows) a transaction at a time until a batch comes
    back short, each batch counted as ``kind`` in ``hive_purged_total`` in its own
    transaction; how many rows in all."""
    total = 0
    while True:
        deleted = in_transaction(lambda c: _count_batch(c, kind, delete(c, batch)))
        total += deleted
        if deleted < batch:
            return total


# What a health sweep keeps of its lock's ttl for the workers' check and for recording
# its probes' results, after its last probe has ended.
HEALTH_RECORD_S = 30.0


def health_now() -> dict[str, Any] | None:
    """One health sweep (services' TTLs and health URLs, workers' heartbeats); None if
    another one is running."""
    settings = get_settings().health
    # Outlives a sweep of up to HIVE_HEALTH_MAX_PROBES slow URLs (one probe timeout). One
    # of many more takes a timeout per turn: it stops starting probes in time to end within
    # the lock (HEALTH_RECORD_S left to record), or the next sweep would run beside it.
    ttl = max(settings.interval_s * 4, settings.timeout_s * 2 + 60.0)
    probe_until = time.monotonic() + ttl - HEALTH_RECORD_S

    def sweep(_: redis.Redis) -> dict[str, Any]:
        return health.sweep(probe_until)

    with log_context(task=keys.HEALTH_TASK):
        return lock.run_exclusively("health", ttl, _logged("health", sweep))


def cleanup_now() -> dict[str, Any] | None:
    """Deregister instances critical too long, and forget breakers with no state left;
    None if another cleanup is running."""
    ttl = max(get_settings().health.cleanup_interval_s * 4, 60.0)
    with log_context(task=keys.CLEANUP_TASK):
        return lock.run_exclusively("cleanup", ttl, _logged("cleanup", _cleanup))


def _cleanup(client: redis.Redis) -> dict[str, Any]:
    return {**health.cleanup_services(), "breakers_pruned": Breakers(client).prune()}


def approvals_now() -> dict[str, Any] | None:
    """Decide the approvals past their ``approval_timeout``; None if another sweep is
    running."""
    ttl = max(get_settings().approvals.interval_s * 4, 60.0)
    with log_context(task=keys.APPROVALS_TASK):
        return lock.run_exclusively(
            "approvals", ttl, _logged("approvals", lambda _: approvals.expire_due())
        )


def _logged(
    name: str, fn: Callable[[redis.Redis], dict[str, Any]]
) -> Callable[[redis.Redis], dict[str, Any]]:
    """Record each maintenance run with its start and end: "when did the last sweep
    succeed" is the first question when runs seem stuck."""

    def run(client: redis.Redis) -> dict[str, Any]:
        started = datetime.now(UTC)
        result = fn(client)
        detail = {"task": name, "started": started.isoformat(), "result": result,
                  "finished": datetime.now(UTC).isoformat()}  # fmt: skip
        in_transaction(lambda c: event_log.record(c, "maintenance", detail))
        return result

    return run


def _periodic(name: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """One maintenance run sent by beat; skipped (one warning) while PostgreSQL is down or
    when it gave up on a statement (a DBA's lock or statement timeout)."""
    with waiting_at_most(PERIODIC_DB_WAIT_S):
        try:
            return fn()
        except (ServiceUnavailable, StatementCanceled) as exc:
            logger.warning("%s skipped: %s; beat sends the next one", name, exc)
            return None


@app.task(name=keys.RECOVER_TASK, ignore_result=True)
def recover_stalled_runs() -> dict[str, Any] | None:
    return _periodic("recover", recover_now)


@app.task(name=keys.PURGE_TASK, ignore_result=True)
def purge_retention() -> dict[str, Any] | None:
    return _periodic("purge", purge_now)


@app.task(name=keys.HEALTH_TASK, ignore_result=True)
def health_sweep() -> dict[str, Any] | None:
    return _periodic("health", health_now)


@app.task(name=keys.CLEANUP_TASK, ignore_result=True)
def cleanup_services() -> dict[str, Any] | None:
    return _periodic("cleanup", cleanup_now)


@app.task(name=keys.APPROVALS_TASK, ignore_result=True)
def expire_approvals() -> dict[str, Any] | None:
    return _periodic("approvals", approvals_now)
