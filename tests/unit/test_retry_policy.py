"""Whether a failed step is retried follows from its error's class, and nothing else."""

from __future__ import annotations

import json
import math
import random

import psycopg2
import psycopg2.errors
import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hive.agents.base import AgentOptions
from hive.db.errors import database_error, translated
from hive.errors import (
    DatabaseNotMigrated,
    HiveError,
    InvalidAgentInput,
    InvalidAgentOutput,
    MalformedReference,
    PermanentError,
    RetryableError,
    ServiceUnavailable,
    SettingsError,
    TransientError,
    UnresolvedReference,
)
from hive.tasks.retry import (
    RETRY_UNCLASSIFIED,
    backoff_s,
    error_info,
    is_retryable,
    retry_delay_s,
)


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


class _AgentsOwnPermanent(PermanentError):
    pass


class _AgentsOwnTransient(TransientError):
    pass


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("no"),
        InvalidAgentInput("input.x: missing"),
        InvalidAgentOutput("output.y: missing"),
        UnresolvedReference("$steps.a.x", "step 'a' has no output"),
        MalformedReference("$nope", "must start with $input or $steps"),
        _AgentsOwnPermanent("a subclass an agent defines"),
    ],
)
def test_a_permanent_error_and_every_subclass_is_never_retried(error: HiveError) -> None:
    assert not is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        RetryableError("again"),
        TransientError("rate limited"),
        ServiceUnavailable("HIVE_DATABASE_URL", "connection refused"),
        _AgentsOwnTransient("a subclass an agent defines"),
    ],
)
def test_a_retryable_error_and_every_subclass_is_always_retried(error: HiveError) -> None:
    assert is_retryable(error)


def test_service_unavailable_is_transient() -> None:
    assert issubclass(ServiceUnavailable, TransientError)
    assert issubclass(ServiceUnavailable, RetryableError)
    assert not issubclass(ServiceUnavailable, PermanentError)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), KeyError("k"), SoftTimeLimitExceeded(), _validation_error()],
)
def test_an_unclassified_error_follows_the_one_stated_policy(error: BaseException) -> None:
    assert RETRY_UNCLASSIFIED is True
    assert is_retryable(error) is RETRY_UNCLASSIFIED


def test_the_errors_keep_their_arguments_and_messages() -> None:
    unavailable = ServiceUnavailable("HIVE_DATABASE_URL", "down")
    assert unavailable.args == ("HIVE_DATABASE_URL", "down", None)
    assert str(unavailable) == "cannot reach the server at HIVE_DATABASE_URL: down"
    unresolved = UnresolvedReference("$input.a", "no key 'a'")
    assert unresolved.args == ("$input.a", "no key 'a'")
    assert str(unresolved) == "cannot resolve $input.a: no key 'a'"
    assert str(PermanentError("boom")) == "boom"


def test_the_backoff_reads_the_options_attributes() -> None:
    fixed = AgentOptions(retry_backoff=2.0, retry_backoff_max=5.0, retry_jitter=False)

    assert [backoff_s(n, fixed) for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
    jittered = AgentOptions(retry_backoff=4.0, retry_jitter=True)
    assert 2.0 <= backoff_s(1, jittered, random.Random(7)) <= 4.0


def test_a_retry_after_replaces_the_backoff_within_the_steps_cap() -> None:
    options = AgentOptions(retry_backoff=2.0, retry_backoff_max=60.0, retry_jitter=False)

    assert retry_delay_s(1, options, error_info(TransientError("429", retry_after_s=12.5))) == 12.5
    assert retry_delay_s(1, options, error_info(RetryableError("503", retry_after_s=0))) == 0.0
    # Longer than the step allows any retry delay: the cap holds.
    assert retry_delay_s(1, options, error_info(RetryableError("429", retry_after_s=900))) == 60.0
    # Without one, the backoff.
    assert retry_delay_s(3, options, error_info(RetryableError("503"))) == 8.0
    assert retry_delay_s(3, options, error_info(RuntimeError("a bug"))) == 8.0


def test_the_recorded_error_keeps_the_retry_after_and_only_when_given() -> None:
    assert error_info(TransientError("429", retry_after_s=3))["retry_after_s"] == 3.0
    assert "retry_after_s" not in error_info(TransientError("429"))
    assert "retry_after_s" not in error_info(PermanentError("no"))


@pytest.mark.parametrize("wait_s", [math.inf, -math.inf, math.nan])
def test_a_retry_after_that_is_no_finite_number_is_not_recorded_and_the_backoff_applies(
    wait_s: float,
) -> None:
    # Stored as JSON in PostgreSQL, which has no NaN nor Infinity: kept, it made the failed
    # attempt unrecordable and left its run running.
    options = AgentOptions(retry_backoff=2.0, retry_backoff_max=60.0, retry_jitter=False)
    info = error_info(TransientError("429", retry_after_s=wait_s))

    assert "retry_after_s" not in info
    json.dumps(info, allow_nan=False)
    assert retry_delay_s(1, options, info) == 2.0
    assert retry_delay_s(1, options, {"retry_after_s": wait_s}) == 2.0


class _Unprintable(Exception):
    """An agent's own exception whose message formatting is itself broken."""

    def __str__(self) -> str:
        return "%s needs %d" % ("a", "b")  # noqa: UP031 - a TypeError on purpose


def test_an_exception_whose_message_cannot_be_read_is_still_recorded() -> None:
    info = error_info(_Unprintable("x"))
    assert info["type"] == "_Unprintable"
    assert info["message"] == "<_Unprintable: its message could not be read (TypeError)>"
    assert "_Unprintable" in info["traceback"]


def test_every_retryable_error_carries_a_retry_after_even_when_none_was_given() -> None:
    """error_info reads it on every RetryableError: a subclass that skipped it broke the
    recording of its failure (ServiceUnavailable, raised by a step's Redis or database)."""
    unavailable = ServiceUnavailable("HIVE_BROKER_URL", "connection refused")
    assert unavailable.retry_after_s is None
    assert error_info(unavailable)["type"] == "ServiceUnavailable"
    assert "retry_after_s" not in error_info(unavailable)
    hinted = ServiceUnavailable("https://api.example", "503", retry_after_s=5)
    assert error_info(hinted)["retry_after_s"] == 5.0
    assert str(hinted) == "cannot reach the server at https://api.example: 503"


# --------------------------------------------------------------- the one database translation


def test_a_dropped_or_refused_connection_is_the_database_being_unavailable() -> None:
    refused = psycopg2.OperationalError("connection refused\nIs the server running?")
    for error in (
        refused,
        OperationalError("SELECT 1", {}, refused),
        InterfaceError("SELECT 1", {}, psycopg2.InterfaceError("connection already closed")),
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
    ):
        translated_error = database_error(error)
        assert isinstance(translated_error, ServiceUnavailable), error
        assert translated_error.variable == "HIVE_DATABASE_URL"
    assert database_error(refused).detail == "connection refused"  # type: ignore[union-attr]


def test_an_undefined_table_is_a_database_not_migrated() -> None:
    missing = psycopg2.errors.UndefinedTable('relation "runs" does not exist')

    assert isinstance(database_error(ProgrammingError("SELECT", {}, missing)), DatabaseNotMigrated)


def test_an_undefined_column_is_a_database_not_migrated_naming_it() -> None:
    """Tables of an older schema: the code was upgraded and `hive db upgrade` not run."""
    missing = psycopg2.errors.UndefinedColumn("column runs.budget_usd does not exist\nLINE 3")

    error = database_error(ProgrammingError("SELECT", {}, missing))

    assert isinstance(error, DatabaseNotMigrated)
    assert "column runs.budget_usd does not exist" in str(error)
    assert "run `hive db upgrade`" in str(error) and "LINE" not in str(error)


def test_an_invalid_dsn_is_a_settings_error() -> None:
    error = database_error(psycopg2.ProgrammingError('invalid dsn: invalid connection option "x"'))

    assert isinstance(error, SettingsError) and error.variable == "HIVE_DATABASE_URL"


def test_other_database_errors_pass_unchanged() -> None:
    constraint = psycopg2.IntegrityError("duplicate key")

    assert database_error(constraint) is None
    with pytest.raises(psycopg2.IntegrityError), translated():
        raise constraint
    with pytest.raises(ServiceUnavailable) as raised, translated():
        raise PoolTimeout("QueuePool limit reached")
    assert isinstance(raised.value.__cause__, PoolTimeout)
