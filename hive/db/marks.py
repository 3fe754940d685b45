"""The outbox marks: which ready steps are believed to have a message in the broker.

A step is marked sent (``enqueued_at``) in the transaction that made it ready, before its
message is published; the publish is then confirmed (``publish_by`` cleared). A mark is
told from a later mark of the same step by its ``enqueued_at`` (the marking transaction's
``now()``, plus a countdown), so a late confirmation never clears a newer mark's grace. A mark is
forgotten when its message is known lost, so the dispatcher or the recovery sweep sends
the step again. Every mark is a compare-and-set: two dispatchers publish a step once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from hive.agents.base import AgentOptions
from hive.db.approvals import NEEDS_APPROVAL
from hive.db.direct import DirectCursor
from hive.db.options import step_options
from hive.db.prepared import PreparedStatement
from hive.settings import get_settings

# Rows are picked by primary key from the array of ids the CTE found: joining the CTE
# instead let the planner, which expects a handful of rows, pick a nested loop that
# compared every step of a 1000-wide fan-out with every other (345 ms for one mark).
# A head needing a person's approval is left unmarked, for the dispatcher to hold (no
# chain leads to such a step: hive/pipelines/plan.py).
_MARK_ENQUEUED = text(
    f"""
    WITH RECURSIVE chain(step_id) AS (
        SELECT s.step_id FROM step_runs s
         WHERE s.run_id = :run_id AND s.step_id = ANY(:heads)
           AND s.status = 'pending' AND s.pending_needs = 0 AND s.enqueued_at IS NULL
           AND NOT ({NEEDS_APPROVAL})
        UNION ALL
        SELECT s.chain_next
          FROM chain c JOIN step_runs s ON s.run_id = :run_id AND s.step_id = c.step_id
         WHERE s.chain_next IS NOT NULL
    )
    UPDATE step_runs s
       SET enqueued_at = now() + make_interval(secs => :delay_s),
           publish_by = now() + make_interval(secs => :publish_grace),
           countdown_from = CASE WHEN :delay_s > 0 THEN now() END
     WHERE s.run_id = :run_id AND s.step_id = ANY(ARRAY(SELECT step_id FROM chain))
       AND s.status = 'pending' AND s.enqueued_at IS NULL
    RETURNING s.step_id, s.chain_next, s.attempt, s.options, s.agent, s.enqueued_at
    """
).bindparams(bindparam("heads", type_=ARRAY(Text)))


_MARK_PREPARED = PreparedStatement(
    "hive_mark_enqueued",
    _MARK_ENQUEUED,
    {"run_id": "uuid", "heads": "text[]", "publish_grace": "float8", "delay_s": "float8"},
)


@dataclass(frozen=True)
class MarkedStep:
    """A step marked sent, with what the dispatcher needs to build its message."""

    step_id: str
    chain_next: str | None
    attempt: int
    options: AgentOptions
    agent: str
    marked_at: datetime | None = None
    """The mark's ``enqueued_at``: what its confirmation matches (None: not known)."""


def mark_enqueued(
    conn: Connection, run_id: uuid.UUID, heads: list[str], delay_s: float = 0.0
) -> list[MarkedStep]:
    """Mark ready ``heads`` and the linear stretch after each as sent (compare-and-set on
    "pending, not yet sent"); only the rows returned may be published. Each mark must be
    confirmed (:func:`confirm_published`) within ``HIVE_PUBLISH_GRACE_S``.

    A message sent with a countdown (a retry's backoff, a deferral) is marked with the time
    it falls due, ``delay_s`` from now: until then it is not in its queue but held by a
    worker, and the recovery sweep counts its age from then, so a long countdown is not
    taken for a lost message. Such a mark also keeps when it was made (``countdown_from``):
    a worker lost since then may have died holding the message."""
    params = {
        "run_id": run_id,
        "heads": heads,
        "publish_grace": get_settings().recovery.publish_grace_s,
        "delay_s": delay_s,
    }
    rows = _MARK_PREPARED.execute(conn, params)
    return [
        MarkedStep(
            r.step_id, r.chain_next, r.attempt, step_options(r.options), r.agent, r.enqueued_at
        )
        for r in rows
    ]


# A confirmation clears the mark it was made for, told by its enqueued_at: the step may
# have been marked again since (its message presumed lost and re-sent), and that mark keeps
# its own grace. Not known (a submit whose insert was answered by a second try): any mark.
_CONFIRM = PreparedStatement(
    "hive_confirm_published",
    text(
        """
        UPDATE step_runs SET publish_by = NULL
         WHERE (run_id, step_id) IN (
               -- A row locked by its claim is being taken anyway: do not wait for it.
               SELECT run_id, step_id FROM step_runs
                WHERE run_id = :run_id AND step_id = ANY(:ids) AND publish_by IS NOT NULL
                  AND enqueued_at = coalesce(:marked_at, enqueued_at)
                  FOR UPDATE SKIP LOCKED)
        """
    ),
    {"run_id": "uuid", "ids": "text[]", "marked_at": "timestamptz"},
)


def confirm_published(
    cursor: DirectCursor, run_id: uuid.UUID, step_ids: list[str], marked_at: datetime | None
) -> None:
    """The messages for these marked steps are in the broker: clear the grace of the marks
    made at ``marked_at`` (their ``enqueued_at``; None: whatever mark they have). Not worth
    a WAL flush: if a crash undoes it, the step is sent twice and the second message is
    dropped by the claim."""
    params = {"run_id": run_id, "ids": step_ids, "marked_at": marked_at}
    cursor.execute(_CONFIRM, params, wait_for_flush=False)


# Each mark's time travels as microseconds since the epoch, in one array literal: a list of
# timestamps cost a batch of 300 steps 1.2 ms more end to end, this 0.6 ms (from 3.2 ms;
# the plan and the server's execution time are unchanged, EXPLAIN ANALYZE).
_CONFIRM_MANY = PreparedStatement(
    "hive_confirm_published_many",
    text(
        """
        UPDATE step_runs SET publish_by = NULL
         WHERE (run_id, step_id) IN (
               SELECT s.run_id, s.step_id
                 FROM unnest(CAST(:run_ids AS uuid[]), :step_ids,
                             CAST(:marked_us AS int8[])) AS c(run_id, step_id, marked_us)
                 JOIN step_runs s ON s.run_id = c.run_id AND s.step_id = c.step_id
                WHERE s.publish_by IS NOT NULL
                  AND s.enqueued_at = coalesce(
                          timestamptz 'epoch' + c.marked_us * interval '1 microsecond',
                          s.enqueued_at)
                  FOR UPDATE OF s SKIP LOCKED)
        """
    ),
    {"run_ids": "text[]", "step_ids": "text[]", "marked_us": "text"},
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def confirm_published_many(
    cursor: DirectCursor, steps: list[tuple[uuid.UUID, str, datetime | None]]
) -> None:
    """:func:`confirm_published` for the steps of many runs, each ``(run_id, step_id,
    marked_at)``, in one statement."""
    marked_us = ",".join("NULL" if at is None else str((at - _EPOCH) // _MICROSECOND)
                         for _, _, at in steps)  # fmt: skip
    params = {
        "run_ids": [str(run_id) for run_id, _, _ in steps],
        "step_ids": [step_id for _, step_id, _ in steps],
        "marked_us": f"{{{marked_us}}}",
    }
    cursor.execute(_CONFIRM_MANY, params, wait_for_flush=False)


_UNMARK_CHAIN = text(
    """
    WITH RECURSIVE tail(step_id) AS (
        SELECT chain_next FROM step_runs
         WHERE run_id = :run_id AND step_id = :step_id AND chain_next IS NOT NULL
        UNION ALL
        SELECT s.chain_next FROM step_runs s JOIN tail t
            ON s.run_id = :run_id AND s.step_id = t.step_id
         WHERE s.chain_next IS NOT NULL
    )
    UPDATE step_runs s SET enqueued_at = NULL
     WHERE s.run_id = :run_id AND s.step_id = ANY(ARRAY(SELECT step_id FROM tail))
       AND s.status = 'pending' AND s.pending_needs > 0
    """
)


def unmark_chain_after(conn: Connection, run_id: uuid.UUID, step_id: str) -> None:
    """Forget that the stretch after ``step_id`` was sent with it: the message carrying that
    chain is gone, so the dispatcher must send it again with the step's next attempt."""
    conn.execute(_UNMARK_CHAIN, {"run_id": run_id, "step_id": step_id})


_UNMARK = text(
    """
    UPDATE step_runs SET enqueued_at = NULL
     WHERE run_id = :run_id AND step_id = ANY(:ids) AND status = 'pending'
    """
).bindparams(bindparam("ids", type_=ARRAY(Text)))


def unmark(conn: Connection, run_id: uuid.UUID, step_ids: list[str]) -> None:
    """Forget that these steps were sent (their publish failed)."""
    conn.execute(_UNMARK, {"run_id": run_id, "ids": step_ids})


_READY_AFTER = text(
    """
    UPDATE step_runs SET enqueued_at = NULL
     WHERE run_id = :run_id AND step_id = ANY(
             SELECT unnest(dependents) FROM step_runs WHERE run_id = :run_id AND step_id = :step_id)
       AND status = 'pending' AND pending_needs = 0
    RETURNING step_id
    """
)


def unmark_ready_dependents(conn: Connection, run_id: uuid.UUID, step_id: str) -> list[str]:
    """Forget that the ready dependents of ``step_id`` were sent, and return them: the
    success that made them ready may have died before sending them (copies are dropped by
    the claim)."""
    return [r.step_id for r in conn.execute(_READY_AFTER, {"run_id": run_id, "step_id": step_id})]
