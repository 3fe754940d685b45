"""Recognising the soft time limit however a library wrapped it."""

from __future__ import annotations

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError, StatementError

from hive.tasks.step import struck_by_soft_limit


def test_the_soft_limit_itself_is_recognised() -> None:
    assert struck_by_soft_limit(SoftTimeLimitExceeded())


def test_a_soft_limit_that_struck_inside_sqlalchemy_is_recognised() -> None:
    wrapped = StatementError("SoftTimeLimitExceeded()", "SELECT 1", {}, SoftTimeLimitExceeded())
    assert struck_by_soft_limit(wrapped)


def test_a_soft_limit_raised_from_is_recognised_through_the_cause() -> None:
    try:
        try:
            raise SoftTimeLimitExceeded()
        except SoftTimeLimitExceeded as exc:
            raise RuntimeError("while writing") from exc
    except RuntimeError as outer:
        assert struck_by_soft_limit(outer)


def test_other_errors_are_not_taken_for_the_soft_limit() -> None:
    assert not struck_by_soft_limit(ValueError("x"))
    assert not struck_by_soft_limit(OperationalError("SELECT 1", {}, ConnectionError("down")))
