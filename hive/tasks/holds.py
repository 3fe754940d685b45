"""Holding a step for a person's decision, where it would otherwise start.

The dispatcher holds a ready step whose ``approval: required`` has not been given
(:func:`hold_ready`, instead of marking it sent); the step task holds the step whose input
the input guard escalates, or whose call meets a breaker open with ``on_open: escalate``
(:func:`escalate`, giving the attempt back uncounted). Either
way the step is ``awaiting_approval``: no message, no lease, nothing for recovery to send
or take back, in PostgreSQL alone. Its request is an ``approval_requested`` event.
:mod:`hive.tasks.approvals` carries out the decision.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hive.db import approvals as store
from hive.db import events as event_log
from hive.db import marks
from hive.db import runs as run_store
from hive.db.options import step_options
from hive.db.retrying import Connection, in_transaction
from hive.errors import PermanentError
from hive.pipelines.refs import resolve

logger = logging.getLogger(__name__)

SYSTEM = "hive"
"""Who requests approvals, and who decides those that time out."""

REQUIRED = "required"
"""The source of an approval asked by the step's option."""


def hold_ready(conn: Connection, run_id: uuid.UUID, step_ids: list[str]) -> list[str]:
    """For the dispatcher: hold those of ``step_ids`` that need an approval (ready, unsent)
    and open their requests, each with the input it would run with. Returns the held."""
    held = store.hold(conn, run_id, step_ids)
    if not held:
        return []
    run_input, _ = run_store.output_spec_of(conn, run_id)
    wanted = sorted({s for step in held for s in step.inputs_from})
    outputs = run_store.outputs_of(conn, run_id, wanted)
    for step in held:
        try:
            step_input = resolve(step.input_template, run_input, outputs)
        except PermanentError:
            step_input = None  # the step fails on its own if approved; the approver sees none
        _request(conn, run_id, step.step_id, step.options, REQUIRED, "approval: required",
                 step_input)  # fmt: skip
    return [step.step_id for step in held]


def escalate(
    run_id: uuid.UUID,
    step_id: str,
    attempt: int,
    reason: str,
    step_input: Any,
    source: str = "input_guard",
    usage: dict[str, float] | None = None,
) -> bool:
    """For the step task: hold the step ``attempt`` runs for a person, the attempt given back
    uncounted (``source`` escalated: the input guard, or an open breaker; ``reason`` never
    quotes the input) with what it used (``usage``: calls it made before). False when the
    attempt no longer owned the step."""

    def txn(conn: Connection) -> bool:
        options = store.escalate(conn, run_id, step_id, attempt, usage)
        if options is None:
            return False
        # The message that carried the chain after this step is done with.
        marks.unmark_chain_after(conn, run_id, step_id)
        _request(conn, run_id, step_id, options, source, reason, step_input)
        return True

    held = in_transaction(txn)
    if held:
        logger.info("step held for approval: %s", reason)
    return held


def _request(
    conn: Connection,
    run_id: uuid.UUID,
    step_id: str,
    raw_options: Any,
    source: str,
    reason: str,
    step_input: Any,
) -> None:
    options = step_options(raw_options)
    timeout_at = store.open_request(
        conn, run_id, step_id, source=source, reason=reason, step_input=step_input,
        timeout_s=options.approval_timeout, timeout_action=options.approval_timeout_action,
    )  # fmt: skip
    detail = {
        "by": SYSTEM,
        "source": source,
        "reason": reason,
        "timeout_at": timeout_at.isoformat() if timeout_at else None,
        "timeout_action": options.approval_timeout_action if timeout_at else None,
    }
    event_log.record(conn, "approval_requested", detail, run_id=run_id, step_id=step_id)


def hold_new_run(run_id: uuid.UUID, step_ids: list[str]) -> list[str]:
    """For submit: hold the new run's first steps that need an approval (inserted unsent:
    should this fail, the recovery sweep finds them ready and the dispatcher holds them)."""
    return in_transaction(lambda conn: hold_ready(conn, run_id, step_ids))
