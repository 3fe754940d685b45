"""One farm per process: the settings an operation is given must name the servers this
process talks to.

The service takes its settings as an argument, and reads from it what is the caller's to
choose (the pipelines folder, the bounds on input). Which PostgreSQL and which Redis it
reaches is the process's, though: engines, the Celery app and Hive's own Redis clients are
built once per process from :func:`hive.settings.get_settings`, as Celery's app is. A
caller handing in settings that name other servers would otherwise read and write the
process's farm without a word; :func:`operation` refuses that, naming the variable.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from hive.errors import SettingsError
from hive.settings import Settings, get_settings

P = ParamSpec("P")
R = TypeVar("R")

# What the operations import when first called, not at the top of their modules, so that a
# one-shot `hive` command pays only for its own: Celery (sending), the guard and Redis
# (admission, breakers), the built-in agents and jsonschema (loading pipelines), httpx (a
# URL of a pipeline or a service that is not plain to check, the health checks).
DEFERRED_IMPORTS = (
    "hive.tasks.dispatch", "hive.tasks.holds", "hive.tasks.cancel", "hive.tasks.approvals",
    "hive.tasks.replay", "hive.guard", "hive.agents.builtin", "jsonschema",
    "jsonschema_specifications", "referencing.jsonschema", "kombu.exceptions", "redis",
    "httpx",
)  # fmt: skip


def serve_at_once(requests: int) -> None:
    """This process answers up to ``requests`` calls at once (an API process's thread pool):
    let its database pools keep a connection for each, up to ``HIVE_DB_POOL_MAX``, as a
    worker's are kept for its concurrency. Smaller pools open and close an overflow
    connection (a PostgreSQL backend) call after call. And import now what the operations
    import on first use (:data:`DEFERRED_IMPORTS`): a server pays for it as it starts,
    not on its first requests."""
    from hive.db.engine import size_pools

    size_pools(requests)
    for module in DEFERRED_IMPORTS:
        importlib.import_module(module)


def confirm_publishes_in_batches(enabled: bool = True) -> None:
    """This process confirms the steps it publishes in batches, off each call's path (an
    API process answering many submits at once): one statement for many, not one each.
    ``enabled=False``: one each again, once what was gathered is written."""
    from hive.tasks.dispatch import confirm_in_batches

    confirm_in_batches(enabled)


def check_farm(settings: Settings) -> None:
    """Raise unless ``settings`` name the same servers and keys as the process's own.

    Raises:
        SettingsError: names the first variable that differs (never its value).
    """
    process = get_settings()
    if settings is process:
        return
    differs = [
        ("HIVE_DATABASE_URL", settings.database.url != process.database.url),
        ("HIVE_BROKER_URL", settings.broker.url != process.broker.url),
        ("HIVE_RESULT_BACKEND", settings.broker.result_backend != process.broker.result_backend),
        ("HIVE_KEY_PREFIX", settings.broker.key_prefix != process.broker.key_prefix),
    ]
    for variable, different in differs:
        if different:
            raise SettingsError(
                variable,
                "differs from this process's own setting; a process talks to one farm, so "
                "set it in the environment before Hive is first used",
            )


def operation(fn: Callable[Concatenate[Settings, P], R]) -> Callable[Concatenate[Settings, P], R]:
    """Mark a service operation: its settings are checked against the process's first."""

    @functools.wraps(fn)
    def checked(settings: Settings, /, *args: P.args, **kwargs: P.kwargs) -> R:
        check_farm(settings)
        return fn(settings, *args, **kwargs)

    return checked
