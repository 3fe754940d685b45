"""Replay a failed run from its failed steps: completed steps are not run again."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from hive.agents.registry import default_registry
from hive.db import dead_letters as letters
from hive.db import events as event_log
from hive.db.retrying import Connection, in_transaction
from hive.errors import ReplayError
from hive.jsondata import unstorable
from hive.pipelines.bounds import json_bound_problems
from hive.pipelines.checks import pinned_changes
from hive.pipelines.refs import as_literal
from hive.settings import get_settings
from hive.tasks.dispatch import Publication, dispatch

# The way forward for a run past its deadline, as each entry point spells it.
_NEW_DEADLINE = (
    "give the replay a new deadline (--deadline in the CLI, deadline_s in the API, "
    "deadline= in the Python client)"
)


def replay(
    run_id: uuid.UUID, new_input: dict[str, Any] | None = None, deadline: float | None = None
) -> list[str]:
    """Reopen a failed run: its failed steps get fresh retries (optionally with ``new_input``
    for the failed step, checked against the agent's input model), skipped steps wait for
    them again. With ``deadline`` (seconds, checked by the caller), the run's deadline is
    now plus that, set in the replay's transaction; without, it keeps its own. Returns the
    steps sent now.

    Raises:
        ReplayError: the run is not ``failed``, its deadline has passed and no new one is
            given (no step of it could start), ``new_input`` is ambiguous, it does not fit
            the failed step's agent, or it changes a field the agent pins to what the
            pipeline writes (the message names each field).
    """
    sent = _replay(run_id, new_input, deadline)
    if sent is None:
        raise ReplayError(str(run_id), "it is not a failed run")
    return sent


def replay_if_failed(run_id: uuid.UUID, deadline: float | None = None) -> list[str] | None:
    """:func:`replay` a run still ``failed``; None when it no longer is (replayed by someone
    else, or purged, since it was found failed).

    Raises:
        ReplayError: its deadline has passed and no new ``deadline`` is given.
    """
    return _replay(run_id, None, deadline)


def _replay(
    run_id: uuid.UUID, new_input: dict[str, Any] | None, deadline: float | None
) -> list[str] | None:
    def txn(conn: Connection) -> Publication | None:
        run = letters.lock_failed_run(conn, run_id)
        if run is None:
            return None
        detail: dict[str, Any] = {}
        if deadline is not None:
            new_deadline = letters.set_deadline(conn, run_id, deadline)
            detail["deadline_at"] = new_deadline.isoformat()
        elif run.deadline_passed is not None:
            # Claims refuse a run past its deadline: recovery would expire it, its dead
            # letters already closed, and the failure would vanish from them.
            when = run.deadline_passed.isoformat(timespec="seconds")
            reason = f"its deadline passed at {when}; no step could start: {_NEW_DEADLINE}"
            raise ReplayError(str(run_id), reason)
        failed = letters.failed_steps(conn, run_id)
        if new_input is not None:
            if len(failed) != 1:
                names = ", ".join(step for step, _ in failed)
                raise ReplayError(str(run_id), f"--input needs one failed step, not: {names}")
            step_id, agent = failed[0]
            template = letters.input_template(conn, run_id, step_id)
            problem = new_input_problem(agent, step_id, new_input) or pinned_input_problem(
                agent, step_id, template, new_input
            )
            if problem is not None:
                raise ReplayError(str(run_id), problem)
            letters.set_input_template(conn, run_id, step_id, as_literal(new_input))
        ready = letters.reopen(conn, run_id)
        event_log.record(
            conn,
            "replay",
            {
                "steps": [s for s, _ in failed],
                "input_edited": new_input is not None,
                **detail,
            },
            run_id=run_id,
        )
        return dispatch(conn, run_id, ready, run.priority)

    publication = in_transaction(txn)
    if publication is None:
        return None
    publication.send()
    return publication.step_ids


def new_input_problem(agent_name: str, step_id: str, data: dict[str, Any]) -> str | None:
    """Why ``data`` cannot be the new input of step ``step_id`` (its size, what JSON cannot
    hold, or each field that does not fit agent ``agent_name``'s input model); None when it
    can. For every path that edits a step's input, with :func:`pinned_input_problem`."""
    agent = default_registry().get(agent_name)
    if agent is None:
        return f"agent {agent_name!r} of step {step_id!r} is not installed"
    # Bounds first: pydantic cannot even validate an input nested deep enough.
    too_big = json_bound_problems(data, "input", get_settings())
    if too_big:
        return f"the new input of step {step_id!r}: " + "; ".join(too_big)
    unfit = unstorable(data, "input")
    if unfit:
        return f"the new input of step {step_id!r}: " + "; ".join(unfit)
    try:
        agent.input_model.model_validate(data)
    except ValidationError as exc:
        problems = [f"input.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return f"the new input of step {step_id!r} does not fit agent {agent_name!r}: " + "; ".join(
            problems
        )
    return None


def pinned_input_problem(
    agent_name: str, step_id: str, template: Any, data: dict[str, Any]
) -> str | None:
    """Why ``data`` cannot replace the input ``template`` of step ``step_id``: it changes a
    field its agent pins (where a credential goes, what the farm's limits key on), which
    only the pipeline may set; None when it changes none. For every path that edits a
    step's input."""
    agent = default_registry().get(agent_name)
    if agent is None or not isinstance(template, dict):
        return None  # an uninstalled agent is refused by the input's own check
    changed = pinned_changes(agent, template, data)
    if not changed:
        return None
    return f"the new input of step {step_id!r} changes what its pipeline sets: " + "; ".join(
        f"{where}: {message}" for where, message in changed
    )
