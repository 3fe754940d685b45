"""The Celery app. Configuration is computed lazily from Hive's settings on first use."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from hive import keys
from hive.settings import Settings, get_settings

_PRIORITY_STEPS = sorted(keys.PRIORITIES.values())


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings that avoid the known traps of Celery on Redis
    (see shared/reference/celery-on-redis.md, section 5)."""
    vt = settings.broker.visibility_timeout_s
    transport = {
        "visibility_timeout": vt,
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "queue_order_strategy": "priority",
        "priority_steps": _PRIORITY_STEPS,
    }
    return {
        "broker_url": settings.broker.url.get_secret_value(),
        "broker_use_ssl": tls_options(settings.broker.url.get_secret_value()),
        "result_backend": settings.broker.result_backend.get_secret_value() or None,
        "redis_backend_use_ssl": tls_options(settings.broker.result_backend.get_secret_value()),
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": vt},
        "visibility_timeout": vt,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_pool_acquire_timeout": 30,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.1,
            "interval_step": 0.3,
            "interval_max": 1,
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Outputs live in PostgreSQL; nothing needs Celery results.
        "task_ignore_result": True,
        "result_expires": 24 * 3600,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # Fetch only when a pool process is free: a message reserved by a worker that is then
        # SIGKILLed would sit in Redis's unacked hash until the visibility timeout, its step
        # never claimed (so holding no lease for recovery to notice).
        "worker_disable_prefetch": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Replacing a pool process stalls it for 0.2-2.9 s (measured): recycle rarely, and
        # on memory rather than on a count.
        "worker_max_tasks_per_child": 100_000,
        "worker_max_memory_per_child": 1_000_000,  # KiB
        "worker_eta_task_limit": 1000,
        # Worker events feed Flower. The "sent" event doubles the cost of every publish
        # (0.67 ms vs 0.36 ms measured) for a state Flower can do without.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "task_default_queue": keys.DEFAULT_QUEUE,
        "task_default_priority": keys.PRIORITIES["normal"],
        "task_inherit_parent_priority": True,
        "worker_hijack_root_logger": False,
        "task_routes": {"hive.beat.*": {"queue": keys.MAINTENANCE_QUEUE}},
        "timezone": "UTC",
        "enable_utc": True,
    }


def tls_options(url: str) -> dict[str, Any] | None:
    """Certificate checks for a ``rediss://`` URL that does not choose them itself.

    Given none, kombu connects without verifying the server's certificate (and Celery's result
    backend refuses to start), while redis-py, which Hive's own clients use, verifies it: both
    verify, unless the URL says otherwise (``?ssl_cert_reqs=none``, ``&ssl_ca_certs=...``).
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parts.query):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


# Its connection class closes safely after Redis is lost (hive/tasks/broker.py).
app = Celery("hive", set_as_current=True, amqp="hive.tasks.broker:HiveAMQP")
app.add_defaults(lambda: celery_config(get_settings()))
# Names, not imports: a worker registers the maintenance tasks without the app importing
# beat (beat sits above tasks). The schedule is attached by `hive beat` alone.
app.conf.include = ["hive.tasks.step", "hive.beat.tasks"]


@worker_init.connect
def _size_pools(sender: Any, **_: Any) -> None:
    """A thread pool runs ``concurrency`` steps in one process, each needing a connection at
    once; a prefork child runs one, and opens no more than it uses. Under a pool without
    time limits (threads, solo) the step task enforces each step's timeout itself."""
    from hive.db.engine import size_pools
    from hive.tasks.deadline import configure_for_pool

    # Celery resolves "auto" only after this signal
    concurrency = sender.concurrency if isinstance(sender.concurrency, int) else None
    configure_for_pool(sender.pool_cls, concurrency)
    if concurrency:
        size_pools(concurrency)


@worker_init.connect
def _import_http_clients(**_: Any) -> None:
    """The agents import httpx when they first call out, so that checking pipelines needs
    none: a worker imports it before its pool forks, and no child's first step pays for it."""
    import hive.agents.builtin.http_clients  # noqa: F401


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    from hive.db.engine import dispose_engine
    from hive.exposition import close_inherited_server

    dispose_engine()
    close_inherited_server()


@worker_ready.connect
def _register_worker(sender: Any, **_: Any) -> None:
    """In the main process, once the worker consumes: it joins the registry and heartbeats."""
    from hive.tasks.presence import on_worker_ready

    on_worker_ready(sender)


@worker_shutdown.connect
def _deregister_worker(**_: Any) -> None:
    """Warm shutdown, after the running steps finished: the worker leaves as offline."""
    from hive.tasks.presence import on_worker_shutdown

    on_worker_shutdown()
    _close_http_clients()


@worker_process_shutdown.connect
def _close_http_clients(**_: Any) -> None:
    """The agents' HTTP clients and their kept connections: in the main process (threads,
    solo) from ``_deregister_worker``, in each prefork child as it exits."""
    from hive.agents.builtin.http_clients import close_clients

    close_clients()


@setup_logging.connect
def _setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    from hive.logs import configure_logging
    from hive.tasks.log_context import MessageIdsFilter

    # Celery passes the level it was started with (`hive worker --loglevel`, which defaults
    # to HIVE_LOG_LEVEL): the command line wins over the setting.
    configure_logging(loglevel, filters=[MessageIdsFilter()])
