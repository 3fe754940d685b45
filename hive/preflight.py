"""Checks of the servers and files Hive needs, each naming its setting."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hive.db.schema import check_migrated
from hive.errors import DatabaseNotMigrated, ServiceUnavailable, SettingsError
from hive.settings import get_settings

if TYPE_CHECKING:
    from hive.pipelines import Catalog

logger = logging.getLogger(__name__)


def check_broker() -> None:
    # Here, not at the top: the service layer imports this module for every command.
    import redis

    url = get_settings().broker.url.get_secret_value()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise ServiceUnavailable("HIVE_BROKER_URL", str(exc).splitlines()[0]) from None


def check_database() -> None:
    """PostgreSQL answers and holds Hive's tables (:func:`hive.db.schema.check_migrated`)."""
    check_migrated()


def check_pipelines_dir(path: Path | None = None) -> Path:
    """``HIVE_PIPELINES_DIR`` (or ``path``, its value in other settings): a directory."""
    path = get_settings().pipelines.dir if path is None else path
    if not path.exists():
        raise SettingsError("HIVE_PIPELINES_DIR", f"{path} does not exist")
    if not path.is_dir():
        raise SettingsError("HIVE_PIPELINES_DIR", f"{path} is not a directory")
    return path


def check_limits_file() -> None:
    """``HIVE_LIMITS_FILE``, when set, reads and validates: a worker refuses to start on a
    file it would not apply (each problem named with its file and key)."""
    from hive.guard import check_limits_file as check

    check()


def wait_for_services(max_delay_s: float = 30.0) -> None:
    """Block until Redis and PostgreSQL answer, saying which one is missing meanwhile."""
    delay = 1.0
    while True:
        try:
            check_broker()
            check_database()
            return
        except (ServiceUnavailable, DatabaseNotMigrated) as exc:
            logger.warning("%s; retrying in %.0fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)


def check_visibility_timeout() -> Catalog | None:
    """Refuse to start when a step may run longer than Redis keeps a message invisible:
    past ``HIVE_VISIBILITY_TIMEOUT_S`` Redis hands a running step's message to another
    worker (shared/reference/celery-on-redis.md, 1.1). Returns the pipelines it checked
    (None: ``HIVE_PIPELINES_DIR`` is no directory), for :func:`warn_unrouted_queues`."""
    from hive.agents.registry import default_registry
    from hive.pipelines import load_catalog

    settings = get_settings()
    registry = default_registry()
    timeouts = {f"agent {a.name}": a.options.timeout for a in registry.all()}
    catalog = None
    if not settings.pipelines.dir.is_dir():
        logger.warning(
            "HIVE_PIPELINES_DIR: %s is not a directory; "
            "pipelines not checked against the visibility timeout",
            settings.pipelines.dir,
        )
    else:
        catalog = load_catalog(settings.pipelines.dir, registry)
        if catalog.problems:
            # Runs carry their steps; a worker does not need the files, only producers do.
            logger.warning(
                "pipelines that do not load are not checked against the visibility timeout:\n%s",
                "\n".join(catalog.problems),
            )
    for pipeline in catalog.pipelines.values() if catalog is not None else ():
        for step in pipeline.steps:
            timeouts[f"{pipeline.source}: step {step.id!r}"] = step.options.timeout
    where, longest = max(timeouts.items(), key=lambda item: item[1])
    # The hard limit is the timeout plus a margin; a message also waits in a buffer.
    if longest + 60 >= settings.broker.visibility_timeout_s:
        raise SettingsError(
            "HIVE_VISIBILITY_TIMEOUT_S",
            f"{settings.broker.visibility_timeout_s}s must exceed the longest step timeout "
            "plus 60s "
            f"({where} has timeout {longest:g}s)",
        )
    return catalog


# A submit's body beside its input: the pipeline's name, the tenant and the idempotency key
# (at most 200 characters each, 6 bytes a character at worst as JSON), the priority, the
# deadline and the budget, and their keys.
SUBMIT_ENVELOPE_BYTES = 4096


def check_api_body_limit() -> None:
    """Refuse to serve the API when an input the farm accepts (``HIVE_MAX_INPUT_BYTES``)
    would not fit in a body it reads (``HIVE_API_MAX_BODY_BYTES``): such a submit would be
    refused with 413, whatever the pipeline."""
    settings = get_settings()
    body, most = settings.api.max_body_bytes, settings.pipelines.max_input_bytes
    if body < most + SUBMIT_ENVELOPE_BYTES:
        raise SettingsError(
            "HIVE_API_MAX_BODY_BYTES",
            f"{body} is less than HIVE_MAX_INPUT_BYTES ({most}) plus {SUBMIT_ENVELOPE_BYTES} "
            "for the rest of a submit's body, so an input the farm accepts would be refused "
            f"with 413; set it to at least {most + SUBMIT_ENVELOPE_BYTES}, or lower "
            "HIVE_MAX_INPUT_BYTES",
        )


def warn_unrouted_queues(queues: list[str], catalog: Catalog) -> None:
    """Warn, in one record, of each of ``queues`` (``hive worker --queues``) to which no
    pipeline of ``catalog`` (what :func:`check_visibility_timeout` loaded) routes a step
    (nor beat its maintenance): a worker on it would wait for good. Not refused, as Celery
    and Temporal do not: a pipeline may come to use it later."""
    from hive import keys

    directory = get_settings().pipelines.dir
    pipelines, problems = catalog.pipelines, catalog.problems
    routed = {keys.agent_queue(s.options.queue) for p in pipelines.values() for s in p.steps}
    unrouted = [queue for queue in queues if queue not in routed | {keys.MAINTENANCE_QUEUE}]
    if not unrouted:
        return
    broken = " (files that do not load left out: `hive pipelines validate`)" if problems else ""
    logger.warning(
        "--queues: no pipeline routes a step to %s, so this worker takes nothing from %s "
        "until one does; the pipelines in %s (HIVE_PIPELINES_DIR) use %s%s, and beat's "
        "maintenance %s",
        ", ".join(repr(q) for q in unrouted),
        "it" if len(unrouted) == 1 else "them",
        directory,
        ", ".join(sorted(routed)) or "no queue",
        broken,
        keys.MAINTENANCE_QUEUE,
    )


def check_injection_rules() -> None:
    """``HIVE_INPUT_GUARD_RULES_FILE``: the input guard's rules, the shipped ones and the
    user's, are validated whole before ``hive worker`` takes a step; a malformed rule stops
    it, naming the file, the rule and the field."""
    from hive.agents.builtin.guard import rule_set

    rule_set()


def check_price_table() -> None:
    """``HIVE_LLM_PRICES_FILE``: a malformed price table stops ``hive worker`` before it
    takes a step, naming each entry at fault; a missing one is a warning (no costs)."""
    from hive.agents.builtin.llm.pricing import check_price_table as check

    check()
