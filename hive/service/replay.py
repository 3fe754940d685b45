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
from hive.pipelines.bounds import check_deadline
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
    *,
    deadline: float | None = None,
) -> list[str]:
    """Reopen a failed run: its failed steps get fresh retries (optionally with
    ``new_input`` for the one failed step), skipped steps wait for them again. With
    ``deadline`` (seconds, as submit's), the run's deadline becomes now plus that, in the
    replay's own transaction; without, it keeps its own, and a run past it is refused.
    Returns the steps sent now.

    Raises:
        PermissionDenied: the role may not replay.
        InvalidArgument: ``deadline`` is not a finite number of seconds above zero and at
            most ten years (submit's rule and words).
        RunNotFound: no run with that id that the caller may see.
        ReplayError: the run is not failed, it is past its deadline and no ``deadline``
            is given (the message says how to give one), or ``new_input`` does not fit.
    """
    caller.require(Right.REPLAY)
    rid = parse_run_id(run_id)
    check_deadline(deadline)
    visible_state(caller, rid)
    if new_input is not None and not isinstance(new_input, dict):
        raise ReplayError(str(rid), "the new input must be a JSON object")
    from hive.tasks.replay import replay  # Celery: for the commands that send

    with log_context(run_id=str(rid)):
        return replay(rid, new_input, deadline)


class Replaying(Iterator[tuple[uuid.UUID, list[str]]]):
    """The runs :func:`replay_failed_runs` replays, each with the steps sent, as it goes;
    and how many it left out for being past their deadline (no new one given)."""

    def __init__(self, replayed: Iterator[tuple[uuid.UUID, list[str]]], left: int) -> None:
        self._replayed = replayed
        self.left_past_deadline = left

    def __next__(self) -> tuple[uuid.UUID, list[str]]:
        return next(self._replayed)


@operation
def replay_failed_runs(
    settings: Settings, caller: Caller, pipeline: str, *, deadline: float | None = None
) -> Replaying:
    """Replay every failed run of ``pipeline`` that the caller may see and that has dead
    letters waiting; yields each run with the steps sent, as it goes. Without ``deadline``
    a run past its deadline is left out (no step of it could start; counted in the
    answer's ``left_past_deadline``); with it, every run replayed gets that new deadline
    (as :func:`replay_run`), those past theirs included. A run no longer failed when its
    turn comes (replayed by someone else meanwhile) is passed over.

    Raises:
        PermissionDenied: the role may not replay (at once, before anything is replayed).
        InvalidArgument: ``deadline`` is not what :func:`replay_run` takes (at once too).
        UnknownPipeline: no failed run of that name, and no such pipeline either (a typo,
            not "nothing to replay"); lists the known ones.
    """
    caller.require(Right.REPLAY)
    check_pipeline_name(pipeline)
    check_deadline(deadline)
    failed = in_transaction(
        lambda conn: letters.failed_runs_of(conn, pipeline, tenant=caller.tenant), retry_s=0
    )
    if not failed:
        # Only now: the runs of a pipeline whose file has since gone are still replayable.
        get_pipeline(settings, caller, pipeline)
    targets = [run_id for run_id, past in failed if deadline is not None or not past]
    return Replaying(_replayed(targets, deadline), len(failed) - len(targets))


def _replayed(
    targets: list[uuid.UUID], deadline: float | None
) -> Iterator[tuple[uuid.UUID, list[str]]]:
    from hive.tasks.replay import replay_if_failed

    for target in targets:
        with log_context(run_id=str(target)):
            try:
                sent = replay_if_failed(target, deadline)
            except ReplayError as exc:  # its deadline passed since it was listed
                logger.warning("%s", exc)
                continue
        if sent is not None:
            yield target, sent
