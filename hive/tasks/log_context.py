"""The ids a task's log records carry, in whichever process and thread writes them.

Celery's ``task_prerun`` and ``task_postrun`` fire around every task, in the process and
thread that runs it (a prefork pool process, a thread of the threads pool), and around
Celery's own "succeeded in" and "raised" trace lines too. Between them every record carries
the task's id and name; a step's also its run, step and attempt (its message's arguments)
and, once claimed, its agent, pipeline, tenant and trace id (:func:`bind_claimed`).

The worker's main process writes records about a step outside those signals: "received"
when the message arrives, and, for an attempt that ends there, its pool process killed, a
hard time limit, a revoke. A step's message is handled there by a :class:`StepRequest`,
which knows the ids the message carries (task id, run, step, attempt, and the agent from
its shadow name) and binds them around each of its handlers that logs;
:class:`MessageIdsFilter` adds them to the "received" record, which Celery writes before
any handler runs.
Pipeline, tenant and trace id come from PostgreSQL with the claim: the main process
never has them.

Two handlers run for every message, and log only in rare cases: ``on_accepted`` (at DEBUG,
or to terminate a task revoked before its start) and ``revoked`` (when it discards one).
They bind the ids only then; the rest of the time the main process pays nothing for them.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from celery import Task
from celery.signals import task_postrun, task_prerun
from celery.worker.request import Request
from celery.worker.state import revoked as revoked_ids

from hive import keys
from hive.logs import bind_log_context, log_context, reset_log_context

__all__ = ["MessageIdsFilter", "StepRequest", "bind_claimed"]

logger = logging.getLogger(__name__)
# Celery's own loggers (the same objects its modules hold): what they will write.
_received_logger = logging.getLogger("celery.worker.strategy")
_request_logger = logging.getLogger("celery.worker.request")

F = TypeVar("F", bound=Callable[..., Any])

# By task id and thread: prerun's token, given back at postrun. A task's two signals come
# from the same thread, so the reset restores what that thread had before (a redelivered
# copy of the same task may run beside it in another thread of a threads pool).
_tokens: dict[tuple[str, int], contextvars.Token[Mapping[str, Any]]] = {}


def bind_claimed(*, agent: str, pipeline: str, tenant: str | None, trace_id: str | None) -> None:
    """Add what the claim told about the step; undone with the rest at postrun."""
    bind_log_context(agent=agent, pipeline=pipeline, tenant=tenant, trace_id=trace_id)


def message_fields(task_id: str, name: str, args: Any) -> dict[str, Any]:
    """The ids a step's message carries: its task id, its arguments (run, step, attempt)
    when they have the step task's shape, and the agent its shadow name gives."""
    fields: dict[str, Any] = {"task_id": task_id}
    agent = keys.step_task_agent(name)
    if agent is not None:
        fields["agent"] = agent
    if isinstance(args, list | tuple) and len(args) == 3:
        run_id, step_id, attempt = args
        if isinstance(run_id, str) and isinstance(step_id, str) and isinstance(attempt, int):
            fields.update(run_id=run_id, step_id=step_id, attempt=attempt)
    return fields


@task_prerun.connect
def _bind_task(
    task_id: str, task: Task[Any, Any], args: tuple[Any, ...] | None = None, **_: Any
) -> None:
    fields: dict[str, Any] = {"task_id": task_id, "task": task.name}
    if task.name == keys.RUN_STEP_TASK:
        # The task's own name is the same for every step: the agent's is the shadow's (the
        # claim confirms it, and adds the pipeline, tenant and trace id).
        shadow = getattr(task.request, "shadow", None) or task.name
        fields.update(message_fields(task_id, shadow, args), task=None)
    _tokens[task_id, threading.get_ident()] = bind_log_context(**fields)


@task_postrun.connect
def _unbind_task(task_id: str, **_: Any) -> None:
    token = _tokens.pop((task_id, threading.get_ident()), None)
    if token is None:
        return
    try:
        reset_log_context(token)
    except ValueError:  # set in another context: nothing of this task's is left here
        logger.debug("log context of task %s was set elsewhere", task_id)


# The step messages the main process holds, by task id, for the "received" record. Weak:
# an entry goes with Celery's last reference to its request, so nothing needs removing.
_held: weakref.WeakValueDictionary[str, StepRequest] = weakref.WeakValueDictionary()


def _with_ids(method: F) -> F:
    @functools.wraps(method)
    def bound(self: StepRequest, *args: Any, **kwargs: Any) -> Any:
        with log_context(**self.log_fields):
            return method(self, *args, **kwargs)

    return cast(F, bound)


class StepRequest(Request):
    """A step's message in the worker's main process: each handler Celery calls there runs
    with the message's ids bound when it can log, so what it logs carries them (a pool
    process lost, a hard time limit, a revoke, Hive's own record of the lost attempt)."""

    _already_revoked: bool  # Celery's, which its stubs leave out

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Celery's strategy writes "received" right after this, at INFO: held only for it.
        if _received_logger.isEnabledFor(logging.INFO):
            _held[self.id] = self

    @functools.cached_property
    def log_fields(self) -> dict[str, Any]:
        return message_fields(self.id, self.name, self.args)

    # Handlers that log whenever they run. Celery's per-task subclass overrides on_success
    # (which logs nothing, and calls on_failure for a failure) and execute_using_pool
    # (which calls revoked).
    on_timeout = _with_ids(Request.on_timeout)
    on_failure = _with_ids(Request.on_failure)
    on_retry = _with_ids(Request.on_retry)
    cancel = _with_ids(Request.cancel)
    terminate = _with_ids(Request.terminate)

    def on_accepted(self, pid: str, time_accepted: float) -> None:
        # Logs only "Task accepted" at DEBUG, or through terminate (which binds the ids).
        if not _request_logger.isEnabledFor(logging.DEBUG):
            Request.on_accepted(self, pid, time_accepted)
            return
        with log_context(**self.log_fields):
            Request.on_accepted(self, pid, time_accepted)

    def revoked(self) -> bool:
        # Called for every message before it goes to a pool process. Celery's check logs only
        # when it discards the message, for one of these reasons; without any, it runs
        # unbound (a reason a later Celery adds would still discard, its record without ids).
        if not (
            self._already_revoked or self.expires or self.id in revoked_ids or self.stamped_headers
        ):
            return bool(Request.revoked(self))
        with log_context(**self.log_fields):
            return bool(Request.revoked(self))


class MessageIdsFilter(logging.Filter):
    """Gives Celery's "Task ... received" record (written in the worker's main process
    as the message arrives, its task id in ``data``) the ids of the step it is about."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            request = _held.get(str(data.get("id")))
            if request is not None:
                for key, value in request.log_fields.items():
                    if key not in record.__dict__:
                        setattr(record, key, value)
        return True
