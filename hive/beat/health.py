"""health_sweep and cleanup_services: the service registry's checks, as Consul runs them.

``sweep`` runs each kind of check in turn, each a function of its own returning its
report: :func:`sweep_services` here; the workers' check joins it beside.

For a service instance:

- TTL: an instance with ``ttl_s`` that has not heartbeated for longer is ``critical``.
- HTTP: an instance with a ``health_url`` is probed (``HIVE_HEALTH_MAX_PROBES`` at once,
  each within ``HIVE_HEALTH_TIMEOUT_S`` of its start; taken a tenant at a time, so one
  tenant's many slow URLs hold another's few back by no more than a turn). 2xx passes
  (``passing``), 429 warns (``warning``); anything else, or no answer, is a failure, and
  ``HIVE_HEALTH_FAILURES`` of them in a row make it ``critical``. One pass (or warning)
  resets the count.

An instance is as bad as its worse check: a probe that passes leaves an instance whose TTL
has expired critical. :func:`cleanup_services` deregisters instances critical for longer
than their ``deregister_after_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import chain, zip_longest
from typing import Any

from hive.beat import workers
from hive.beat.probes import Probe, Verdict, probe_all
from hive.db import service_checks
from hive.db.retrying import Connection, in_transaction
from hive.settings import get_settings
from hive.statuses import ServiceStatus

logger = logging.getLogger(__name__)


@dataclass
class ServiceSweepReport:
    ttl_expired: int = 0
    probed: int = 0
    passed: int = 0
    warned: int = 0
    failed: int = 0
    changed: int = 0
    """Status changes made by probes (each a ``service_status`` event)."""
    stale: int = 0
    """Probe results dropped: the instance changed (or went) while it was probed."""
    unprobed: int = 0
    """Health URLs whose turn came too late for the sweep to end within its lock: they go
    first in the next sweep (the least recently checked go first)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(probe_until: float | None = None) -> dict[str, Any]:
    """One health sweep: every kind of check, each reported under its own key. Workers go
    first: a lost worker's steps are taken back at once (as `worker_lost`), not when their
    lease runs out. With ``probe_until`` (a ``time.monotonic()`` reading), no probe runs
    past it (see :func:`sweep_services`)."""
    lost_after_s = get_settings().workers.lost_after_s
    return {
        "workers": workers.sweep_workers(lost_after_s).as_dict(),
        "services": sweep_services(probe_until).as_dict(),
    }


def next_state(
    status: str, failures: int, verdict: Verdict, *, ttl_expired: bool, threshold: int
) -> tuple[ServiceStatus, int]:
    """An instance's status and consecutive failures after a probe's verdict."""
    if verdict is Verdict.FAIL:
        failures += 1
        if failures >= threshold or ttl_expired:
            return ServiceStatus.CRITICAL, failures
        return ServiceStatus(status), failures
    if ttl_expired:
        return ServiceStatus.CRITICAL, 0
    return (ServiceStatus.PASSING if verdict is Verdict.PASS else ServiceStatus.WARNING), 0


def sweep_services(probe_until: float | None = None) -> ServiceSweepReport:
    """Expire TTLs, probe the health URLs and record what changed. With ``probe_until``
    (a ``time.monotonic()`` reading), a probe that could not end by then is not started:
    its instance is left as it is for the next sweep, which probes the least recently
    checked first, so every instance takes its turn however many hang."""
    settings = get_settings().health
    report = ServiceSweepReport()
    report.ttl_expired = in_transaction(service_checks.expire_ttls)
    targets = in_transaction(service_checks.probe_targets)
    # No transaction is open while probing: that takes up to the probe timeout.
    turns = taking_turns(targets)
    start_by = None if probe_until is None else probe_until - settings.timeout_s
    probes = probe_all(
        {t.id: t.health_url for t in turns},
        settings.timeout_s,
        settings.max_probes,
        start_by=start_by,
    )
    report.probed = len(probes)
    report.unprobed = len(targets) - len(probes)
    if report.unprobed:
        logger.warning("health sweep: %d health URLs left for the next sweep (no time left)",
                       report.unprobed)  # fmt: skip
    targets = [t for t in targets if t.id in probes]
    for probe in probes.values():
        _count(report, probe)

    def record(conn: Connection) -> tuple[int, int]:
        # Counted here and returned: a transaction retried after a dropped connection
        # starts over, and so do its counts.
        changed = stale = 0
        for target in targets:
            probe = probes[target.id]
            status, failures = next_state(
                target.status,
                target.failures,
                probe.verdict,
                ttl_expired=target.ttl_expired,
                threshold=settings.failures,
            )
            applied = service_checks.record_check(
                conn,
                target.id,
                expected_status=target.status,
                expected_failures=target.failures,
                status=status,
                failures=failures,
                output=probe.output,
            )
            if not applied:
                stale += 1
            elif status != target.status:
                changed += 1
                logger.info(
                    "service instance %s: %s -> %s (%s)",
                    target.id, target.status, status, probe.output,
                )  # fmt: skip
        return changed, stale

    report.changed, report.stale = in_transaction(record)
    return report


def taking_turns(targets: Iterable[Any]) -> list[Any]:
    """``targets`` (each with a ``tenant``) in the order they are probed: the first of each
    tenant's, then the second of each, and so on."""
    by_tenant: dict[str | None, list[Any]] = {}
    for target in targets:
        by_tenant.setdefault(target.tenant, []).append(target)
    rounds: Iterable[Sequence[Any]] = zip_longest(*by_tenant.values())
    return [t for t in chain.from_iterable(rounds) if t is not None]


def _count(report: ServiceSweepReport, probe: Probe) -> None:
    if probe.verdict is Verdict.PASS:
        report.passed += 1
    elif probe.verdict is Verdict.WARN:
        report.warned += 1
    else:
        report.failed += 1


def cleanup_services() -> dict[str, Any]:
    """Deregister the instances critical for longer than their ``deregister_after_s``."""
    removed = in_transaction(service_checks.remove_long_critical)
    if removed:
        logger.info("cleanup: deregistered %s", ", ".join(removed))
    return {"deregistered": removed}
