"""Which publish failures are left to recovery (the broker may take the message later) and
which are recorded at once (it never will)."""

from __future__ import annotations

import kombu.exceptions
import pytest
import redis.exceptions
from redis._parsers.base import BaseParser

from hive.tasks.dispatch import is_transient_broker_error


def _as_kombu_raises(reply: str) -> BaseException:
    """A Redis error reply parsed as redis-py parses it, wrapped as kombu re-raises it."""
    cause = BaseParser.parse_error(reply)
    try:
        raise kombu.exceptions.OperationalError(str(cause)) from cause
    except kombu.exceptions.OperationalError as exc:
        return exc


@pytest.mark.parametrize(
    "reply",
    [
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "NOREPLICAS Not enough good replicas to write.",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        "LOADING Redis is loading the dataset in memory",
        "READONLY You can't write against a read only replica.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
    ],
)
def test_a_broker_that_cannot_take_a_message_just_now_is_transient(reply: str) -> None:
    assert is_transient_broker_error(_as_kombu_raises(reply))


@pytest.mark.parametrize(
    "reply",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR unknown command 'LPUSHX'",
    ],
)
def test_a_reply_that_would_come_back_the_same_is_not_transient(reply: str) -> None:
    assert not is_transient_broker_error(_as_kombu_raises(reply))


def test_a_refused_connection_is_transient() -> None:
    try:
        raise kombu.exceptions.OperationalError("refused") from redis.exceptions.ConnectionError(
            "Error 111 connecting to 127.0.0.1:1. Connection refused."
        )
    except kombu.exceptions.OperationalError as exc:
        assert is_transient_broker_error(exc)
