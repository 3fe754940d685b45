"""`clean_state` leaves a test nothing of the tests its process ran before it."""

from __future__ import annotations

import redis

from hive import service
from hive.db.models import Base
from hive.settings import get_settings
from tests.support import db


def test_emptying_the_farm_empties_every_table_the_service_registry_too(
    hive_env: dict[str, str], redis_db: tuple[redis.Redis, int]
) -> None:
    # An instance an earlier test registered was still listed (and counted by the exporter)
    # in the next test of its process.
    service.register_service(get_settings(), service.OPERATOR, "search", "http://127.0.0.1:9/")
    service.submit(get_settings(), service.OPERATOR, "echo-one", {"text": "x"})

    db.empty_farm(redis_db[0])

    left = {
        table.name: db.scalar(f"SELECT count(*) FROM {table.name}")
        for table in Base.metadata.sorted_tables
    }
    assert {name: n for name, n in left.items() if n} == {}
