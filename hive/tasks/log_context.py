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
its shadow name) and binds them around each of its handlers; :class:`MessageIdsFilter`
adds them to the "received" record, which Celery writes before any handler runs.
Pipeline, tenant and trace id come from PostgreSQL with the claim: the main process
never has them.
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

from hive import keys
from hive.logs import bind_log_context, log_context, reset_log_context

__all__ = ["MessageIdsFilter", "StepRequest", "bind_claimed"]

logger = logging.getLogger(__name__)

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
    with the message's ids bound, so what it logs carries them (a pool process lost, a hard
    time limit, a revoke, Hive's own record of the lost attempt)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log_fields = message_fields(self.id, self.name, self.args)
        _held[self.id] = self

    # Every handler that logs. Celery's per-task subclass overrides on_success (which logs
    # nothing, and calls on_failure for a failure) and execute_using_pool (which calls
    # revoked).
    on_accepted = _with_ids(Request.on_accepted)
    on_timeout = _with_ids(Request.on_timeout)
    on_failure = _with_ids(Request.on_failure)
    on_retry = _with_ids(Request.on_retry)
    revoked = _with_ids(Request.revoked)
    cancel = _with_ids(Request.cancel)
    terminate = _with_ids(Request.terminate)


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
