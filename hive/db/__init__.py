"""PostgreSQL: the system of record for runs, steps, attempts, events and workers. All of Hive's SQL
lives in this package (an import-linter contract forbids SQLAlchemy and psycopg2 elsewhere).

Modules, one concept each::

    claims          a step's claim and its success (the two statements of every step)
    failures        a failed attempt: the failure policy, recording it, skipping descendants
    marks           the outbox: mark sent, confirm published, unmark, resend what was lost
    runs            insert a run with its steps, count down, finish; reads for the service
    stops, undeliverable, dead_letters, sweeps, events    the rest, by what they change
    workers         the worker registry: register, heartbeat, offline, the lost-worker sweep
    figures         the farm-wide figures ``hive exporter`` reads on each scrape
    usage           what steps used (tokens, cost): stored with each outcome, summed per
                    run and per tenant
    budgets         cost budgets: reserve a step's estimate (a compare-and-set), settle
                    what it cost, release what dead attempts held
    budget_limits   tenants' daily budgets: set, clear, read with today's spending
    options         stored step options read back as AgentOptions (one default each)
    schema, migrate whether the tables are there; Alembic's upgrade
    errors          the one translation of driver errors into HiveErrors
    retrying        the ways in: ``in_transaction`` (``in_transaction_giving_way`` for a
                    stop), ``in_autocommit`` and ``on_direct_cursor``
    engine, direct, prepared, models    the engines, the direct cursor, PREPARE, the tables

Two ways to reach PostgreSQL, both in :mod:`hive.db.retrying`, both retried while the
database is unreachable and translated by :mod:`hive.db.errors`:

``on_direct_cursor(fn)``
    A psycopg2 cursor from the autocommit pool (:mod:`hive.db.direct`); each statement is
    its own transaction, server-side prepared (:mod:`hive.db.prepared`). Only for the
    statements every step or submit pays for, where one round trip and no SQLAlchemy layer
    matter: the claim (:func:`~hive.db.claims.claim`), the one-statement success
    (:func:`~hive.db.claims.succeed_alone`), the publish confirmation
    (:func:`~hive.db.marks.confirm_published`, or many at once:
    :func:`~hive.db.marks.confirm_published_many`) and the submit
    (:func:`~hive.db.runs.insert_run`). SQLAlchemy's ``Connection`` cost about 0.1 ms a
    statement, ``BEGIN``/``COMMIT`` two round trips, and preparing took the claim from 0.73
    to 0.53 ms (bench/RESULTS.md, third round: claim + success per hop 1.34 → 0.85 ms;
    docs/architecture.md, "A chain step is two round trips").

``in_transaction(fn)``
    A SQLAlchemy ``Connection`` in one transaction, for everything else: whatever must
    commit together (a failure with its retry's marks or the run's count-down, a success
    that leaves dependents to send, a stop, a replay, the sweeps), and the service layer's
    reads. The marks and the run's finish are prepared here too, through the same
    :class:`~hive.db.prepared.PreparedStatement`. A stop goes through
    ``in_transaction_giving_way(fn)``: it locks the run's row before its steps', the
    opposite of a success's order, so it skips the steps' rows another transaction holds
    and, having skipped one, rolls back and runs again.

Nothing else opens a connection: no ``get_engine().connect()`` outside this package (the
readiness check is :func:`hive.db.schema.check_migrated`; migrations go through Alembic's
own engine, translated by :func:`hive.db.errors.translated`). Tests may use the engine.

Status literals in SQL text are :mod:`hive.statuses` values written out: the planner
matches partial indexes (migration 0003) only against literals, and a test holds every
literal to the enums.
"""

from hive.db.engine import dispose_engine, get_engine
from hive.db.models import Base, Event, Run, StepAttempt, StepRun
from hive.statuses import ACTIVE_RUN_STATUSES, FINAL_RUN_STATUSES, RunStatus, StepStatus

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "FINAL_RUN_STATUSES",
    "Base",
    "Event",
    "Run",
    "RunStatus",
    "StepAttempt",
    "StepRun",
    "StepStatus",
    "dispose_engine",
    "get_engine",
]
