"""Arguments of the service layer checked before they reach PostgreSQL; no servers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from hive import Client
from hive.errors import InvalidArgument, RunNotFound
from hive.service import Caller, Role, parse_run_id
from hive.service.arguments import check_listing
from hive.settings import Settings


@pytest.mark.parametrize(
    ("tenant", "problem"),
    [
        ("x" * 300, "tenant is 300 characters long; at most 200"),
        ("a\x00b", "tenant contains a NUL character"),
        ("", "tenant must be a non-empty name"),
        (7, "tenant must be a string, not int"),
    ],
    ids=["too-long", "nul", "empty", "not-a-string"],
)
def test_a_tenant_bound_caller_with_a_tenant_no_run_could_be_stored_under_is_refused(
    tenant: Any, problem: str
) -> None:
    for make in (
        lambda: Caller(tenant, Role.VIEWER),
        lambda: Caller.for_tenant(tenant),
        lambda: Client(Settings(), tenant=tenant),
    ):
        with pytest.raises(InvalidArgument, match=problem) as raised:
            make()
        assert isinstance(raised.value, ValueError)


def test_a_tenant_as_long_as_its_column_makes_a_caller() -> None:
    assert Caller("t" * 200, Role.PRODUCER).tenant == "t" * 200


@pytest.mark.parametrize("run_id", [123, 1.5, None, b"0" * 32, ["x"]])
def test_a_run_id_that_is_neither_a_uuid_nor_text_is_refused_naming_its_type(
    run_id: Any,
) -> None:
    with pytest.raises(InvalidArgument, match=f"not {type(run_id).__name__}"):
        parse_run_id(run_id)


def test_text_that_is_no_uuid_names_no_run() -> None:
    with pytest.raises(RunNotFound, match="no run with id nope"):
        parse_run_id("nope")
    run_id = uuid.uuid4()
    assert parse_run_id(str(run_id)) == parse_run_id(run_id) == run_id


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"limit": -1}, "limit must be a whole number from 1 to 10000, not -1"),
        ({"limit": 0}, "not 0"),
        ({"limit": 10**20}, "not 100000000000000000000"),
        ({"limit": "5"}, "not '5'"),
        ({"limit": True}, "not True"),
        ({"limit": None}, "not None"),
        ({"pipeline": 5}, "pipeline must be a pipeline name, not int"),
        ({"pipeline": "a\x00b"}, "pipeline contains a NUL character"),
        ({"status": "done"}, "status must be one of queued, running"),
        ({"status": ["failed"]}, "not ['failed']"),
        ({"since": "1h"}, "since must be a datetime, not str"),
    ],
)
def test_listing_arguments_postgresql_would_refuse_are_refused_by_name(
    arguments: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(problem)):
        check_listing(**{"limit": 20, **arguments})


def test_listing_arguments_in_range_pass() -> None:
    check_listing(limit=1)
    check_listing(limit=10_000, pipeline="doc-triage", status="failed", since=datetime.now(UTC))
