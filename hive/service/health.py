"""Is this process of the farm doing its job? ``hive healthcheck``: what a supervisor
(docker compose's ``healthcheck``, a Kubernetes probe, a cron line) runs beside each
long-running process, reading only what that process itself makes observable.

- a worker answers Celery's ping (its main process consumes, control messages included);
- beat's maintenance tasks ran lately, as PostgreSQL records them: beat sends them and a
  worker runs them, so a beat that stopped sending shows within three of the shortest
  interval;
- Flower answers its workers page with the credentials it was given, and refuses it
  without them;
- the exporter serves its figures;
- ``hive api`` is ready: its ``/readyz`` answers 200 (PostgreSQL and Redis reachable).

Each returns a :class:`Health`; none raises for an unhealthy answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hive import preflight
from hive.errors import HiveError, ServiceUnavailable
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.settings import Settings

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str
    """One line for the operator: what was found, never a secret."""


@operation
def ping_worker(settings: Settings, caller: Caller, node: str, *, timeout_s: float) -> Health:
    """Whether the worker ``node`` (its Celery node name) answers a ping within
    ``timeout_s``. A ``solo`` pool busy with a step cannot answer until it is done.

    Raises:
        PermissionDenied: the caller is not the operator.
    """
    caller.require(Right.INSPECT)
    # Imported here: a producer (Client) never loads the Celery app's control.
    from hive.tasks.presence import answering

    try:
        # Else a broker that is down reads as a worker that did not answer.
        preflight.check_broker()
    except ServiceUnavailable as exc:
        return Health(False, str(exc))
    if answering([node], timeout_s):
        return Health(True, f"worker {node} answers")
    return Health(False, f"worker {node} did not answer a ping within {timeout_s:g}s")


@operation
def beat_health(settings: Settings, caller: Caller, *, within_s: float | None = None) -> Health:
    """Whether a maintenance task succeeded in the last ``within_s`` seconds (default:
    three of the shortest interval, 30 s with the default settings). Tasks with long
    intervals (purge, daily) are the ``HiveMaintenanceOverdue`` alert's to watch: a beat
    restarted without its schedule file waits one interval before their first run.

    Raises:
        PermissionDenied: the caller is not the operator.
    """
    caller.require(Right.INSPECT)
    from hive.beat.schedule import maintenance_intervals
    from hive.db.figures import database_now, read_maintenance
    from hive.db.retrying import in_transaction

    intervals = maintenance_intervals(settings)
    window = within_s if within_s is not None else 3 * min(intervals.values())
    try:
        # Ages by PostgreSQL's clock, which wrote the times: this host's may be off.
        last, now = in_transaction(lambda c: (read_maintenance(c), database_now(c)), retry_s=0)
    except HiveError as exc:
        return Health(False, f"cannot read the maintenance record: {exc}")
    ages = {task: max(now - last[task], 0.0) for task in intervals if task in last}
    seen = ", ".join(f"{task} {age:.0f}s ago" for task, age in sorted(ages.items()))
    if not ages:
        return Health(False, "no maintenance task has run yet: is a worker consuming "
                             "hive.maintenance?")  # fmt: skip
    if min(ages.values()) > window:
        return Health(False, f"no maintenance task ran in the last {window:g}s ({seen})")
    return Health(True, f"maintenance ran: {seen}")


def flower_health(settings: Settings, address: str, port: int, *, timeout_s: float) -> Health:
    """Whether Flower on ``address:port`` answers its workers page (as JSON, from what its
    events told it: no call to the workers) with the credentials of
    ``HIVE_FLOWER_BASIC_AUTH``, and refuses it without them (when it has credentials).
    Not its API: without authentication Flower refuses that to everyone, and not
    ``/healthcheck``, which it serves to anyone."""
    import httpx  # here: a producer (Client) never needs it

    url = f"http://{_host(address)}:{port}/workers?json=1"
    auth = settings.flower.basic_auth
    try:
        if auth is None:
            return _expect(httpx.get(url, timeout=timeout_s), 200, "Flower")
        user, _, password = auth.get_secret_value().split(",")[0].partition(":")
        allowed = httpx.get(url, auth=(user, password), timeout=timeout_s)
        if allowed.status_code != 200:
            return _expect(allowed, 200, "Flower with HIVE_FLOWER_BASIC_AUTH")
        refused = httpx.get(url, timeout=timeout_s)
        if refused.status_code != 401:
            return Health(False, f"Flower answered {refused.status_code} without credentials")
    except httpx.HTTPError as exc:
        return Health(False, f"Flower on port {port} does not answer: {type(exc).__name__}")
    return Health(True, f"Flower answers on port {port}, with authentication")


def exporter_health(address: str, port: int, *, timeout_s: float) -> Health:
    """Whether ``hive exporter`` on ``address:port`` serves its figures."""
    import httpx

    url = f"http://{_host(address)}:{port}/metrics"
    try:
        answer = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Health(False, f"the exporter on port {port} does not answer: {type(exc).__name__}")
    if answer.status_code != 200 or "hive_exporter_source_up" not in answer.text:
        return Health(False, f"the exporter on port {port} answered {answer.status_code} "
                             "without its figures")  # fmt: skip
    return Health(True, f"the exporter serves its figures on port {port}")


def api_health(address: str, port: int, *, timeout_s: float) -> Health:
    """Whether ``hive api`` on ``address:port`` is ready: ``/readyz`` answers 200, which it
    does while PostgreSQL and Redis answer it."""
    import httpx

    url = f"http://{_host(address)}:{port}/readyz"
    try:
        answer = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Health(False, f"the API on port {port} does not answer: {type(exc).__name__}")
    if answer.status_code != 200:
        return Health(False, f"the API on port {port} is not ready ({answer.status_code}): "
                             f"{answer.text[:200]}")  # fmt: skip
    return Health(True, f"the API on port {port} is ready")


def _host(address: str) -> str:
    """Where to reach a process listening on ``address``: itself, or this host's loopback
    for every interface."""
    if address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address


def _expect(answer: httpx.Response, status: int, what: str) -> Health:
    if answer.status_code == status:
        return Health(True, f"{what} answers")
    return Health(False, f"{what} answered {answer.status_code}, not {status}")
