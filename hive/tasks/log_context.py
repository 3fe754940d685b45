"""The ids a task's log records carry, for as long as the task runs in a worker.

Celery's ``task_prerun`` and ``task_postrun`` fire around every task, in the process and
thread that runs it (a prefork pool process, a thread of the threads pool), and around
Celery's own "received ... succeeded in" trace lines too. Between them every record carries
the task's id and name; a step's also its run, step and attempt (its message's arguments)
and, once claimed, its agent, pipeline, tenant and trace id (:func:`bind_claimed`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Mapping
from typing import Any

from celery import Task
from celery.signals import task_postrun, task_prerun

from hive import keys
from hive.logs import bind_log_context, reset_log_context

__all__ = ["bind_claimed"]

logger = logging.getLogger(__name__)

# By task id and thread: prerun's token, given back at postrun. A task's two signals come
# from the same thread, so the reset restores what that thread had before (a redelivered
# copy of the same task may run beside it in another thread of a threads pool).
_tokens: dict[tuple[str, int], contextvars.Token[Mapping[str, Any]]] = {}


def bind_claimed(*, agent: str, pipeline: str, tenant: str | None, trace_id: str | None) -> None:
    """Add what the claim told about the step; undone with the rest at postrun."""
    bind_log_context(agent=agent, pipeline=pipeline, tenant=tenant, trace_id=trace_id)


@task_prerun.connect
def _bind_task(
    task_id: str, task: Task[Any, Any], args: tuple[Any, ...] | None = None, **_: Any
) -> None:
    fields: dict[str, Any] = {"task_id": task_id, "task": task.name}
    if task.name == keys.RUN_STEP_TASK and args and len(args) == 3:
        fields.update(run_id=args[0], step_id=args[1], attempt=args[2], task=None)
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
