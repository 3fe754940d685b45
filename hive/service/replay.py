"""Replay failed runs from their failed steps (completed steps are not run again)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from hive.db import dead_letters as letters
from hive.db.retrying import in_transaction
from hive.errors import ReplayError
from hive.logs import log_context
from hive.service.arguments import check_pipeline_name, parse_run_id
from hive.service.caller import Caller, Right
from hive.service.farm import operation
from hive.service.pipelines import get_pipeline
from hive.service.runs import visible_state
from hive.settings import Settings

logger = logging.getLogger(__name__)


@operation
def replay_run(
    settings: Settings,
    caller: Caller,
    run_id: uuid.UUID | str,
    new_input: dict[str, Any] | None = None,
) -> list[str]:
    """Reopen a failed run: its failed steps get fresh retries (optionally with
    ``new_input`` for the one failed step), skipped steps wait for them again. Returns the
    steps sent now.

    Raises:
        PermissionDenied: the role may not replay.
        RunNotFound: no run with that id that the caller may see.
        ReplayError: the run is not failed, or ``new_input`` does not fit.
    """
    caller.require(Right.REPLAY)
    rid = parse_run_id(run_id)
    visible_state(caller, rid)
    if new_input is not None and not isinstance(new_input, dict):
        raise ReplayError(str(rid), "the new input must be a JSON object")
    from hive.tasks.replay import replay  # Celery: for the commands that send

    with log_context(run_id=str(rid)):
        return replay(rid, new_input)


@operation
def replay_failed_runs(
    settings: Settings, caller: Caller, pipeline: str
) -> Iterator[tuple[uuid.UUID, list[str]]]:
    """Replay every failed run of ``pipeline`` that the caller may see and that has dead
    letters waiting; yields each run with the steps sent, as it goes. A run past its
    deadline is left out (no step of it could start), and one that is no longer failed when
    its turn comes (replayed by someone else meanwhile) is passed over.

    Raises:
        PermissionDenied: the role may not replay (at once, before anything is replayed).
        UnknownPipeline: no failed run of that name, and no such pipeline either (a typo,
            not "nothing to replay"); lists the known ones.
    """
    caller.require(Right.REPLAY)
    check_pipeline_name(pipeline)
    targets = in_transaction(
        lambda conn: letters.failed_runs_of(conn, pipeline, tenant=caller.tenant), retry_s=0
    )
    if not targets:
        # Only now: the runs of a pipeline whose file has since gone are still replayable.
        get_pipeline(settings, caller, pipeline)
    return _replayed(targets)


def _replayed(targets: list[uuid.UUID]) -> Iterator[tuple[uuid.UUID, list[str]]]:
    from hive.tasks.replay import replay_if_failed

    for target in targets:
        with log_context(run_id=str(target)):
            try:
                sent = replay_if_failed(target)
            except ReplayError as exc:  # its deadline passed since it was listed
                logger.warning("%s", exc)
                continue
        if sent is not None:
            yield target, sent
