"""Publish confirmations written together: one statement for every step a busy process
published meanwhile, instead of one per publish, and off the publisher's path.

A confirmation only clears a mark's publish grace (``publish_by``, see
:mod:`hive.db.marks`), and only the grace of the mark it was made for: a step marked again
meanwhile (its message presumed lost and re-sent) keeps its new mark's grace. The
recovery sweep re-sends a mark once that grace (``HIVE_PUBLISH_GRACE_S``, 30 s by default)
has passed unconfirmed, so confirming a few milliseconds later re-sends nothing. A
confirmation lost with its process (it died before the batch was written) or with
PostgreSQL costs what a failed one always did: the step is sent once more after the
grace, and the claim drops the copy.

One thread per process writes: it takes whatever gathered while the previous batch was
being written, so a quiet process writes each confirmation at once, a busy one many per
statement. The thread lives as long as its process (a daemon): the owner flushes it
before it stops (:func:`hive.tasks.dispatch.confirm_in_batches`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import datetime

from hive.db import marks
from hive.db.retrying import on_direct_cursor
from hive.errors import HiveError

logger = logging.getLogger(__name__)

# Steps per statement, at most: a batch's arrays stay small next to a statement's limits.
_BATCH_MAX = 1000


class Confirmations:
    """Gathers confirmations (:meth:`add`) for one writer thread, started on first use in
    each process (a forked child starts its own)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[tuple[uuid.UUID, str, datetime | None]] = []
        self._writing = 0
        self._pid: int | None = None

    def add(self, run_id: uuid.UUID, step_ids: list[str], marked_at: datetime | None) -> None:
        """Confirm these published steps of ``run_id``, marked at ``marked_at``, soon, in
        a batch."""
        with self._cond:
            if self._pid != os.getpid():
                self._start()
            self._pending.extend((run_id, step_id, marked_at) for step_id in step_ids)
            self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every confirmation added so far is written (or given up); False if
        ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._writing:
                left = deadline - time.monotonic()
                if left <= 0 or self._pid != os.getpid():
                    return False
                self._cond.wait(left)
        return True

    def _start(self) -> None:
        # Anything gathered in a parent process is the parent's to write.
        self._pending = []
        self._writing = 0
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="hive-confirmations", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch = self._pending[:_BATCH_MAX]
                del self._pending[:_BATCH_MAX]
                self._writing = len(batch)
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._writing = 0
                    self._cond.notify_all()

    @staticmethod
    def _write(batch: list[tuple[uuid.UUID, str, datetime | None]]) -> None:
        try:
            on_direct_cursor(lambda cursor: marks.confirm_published_many(cursor, batch), retry_s=5)
        except HiveError:
            # Sent but unconfirmed: recovery sends them again; the claim drops the copies.
            logger.warning("could not confirm %d published steps", len(batch))
        except Exception:
            # The thread must outlive any one batch: the marks stay, recovery sends them.
            logger.exception("could not confirm %d published steps", len(batch))
