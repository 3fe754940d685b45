"""A test session's Redis db index stays its own: another session starting meanwhile never
takes it, or its workers would take this session's messages."""

from __future__ import annotations

import threading
import time

import redis

from tests.support import db, services


def test_another_session_cannot_claim_a_sessions_redis_db_while_it_is_emptied(
    hive_env: dict[str, str], redis_db: tuple[redis.Redis, int]
) -> None:
    client, index = redis_db
    owner = client.get(services.OWNER_KEY)
    intruders: list[redis.Redis] = []
    done = threading.Event()

    def claim_again_and_again() -> None:
        while not done.is_set() and not intruders:
            taken = services.try_claim_redis_db(index, "hive-test-intruder")
            if taken is not None:
                intruders.append(taken)

    claimer = threading.Thread(target=claim_again_and_again)
    claimer.start()
    try:
        ends = time.monotonic() + 10
        for _ in range(200):  # each emptying gave the claimer its chance, before the fix
            if intruders or time.monotonic() > ends:
                break
            db.empty_farm(client)
    finally:
        done.set()
        claimer.join()
    if intruders:
        client.set(services.OWNER_KEY, owner or b"", ex=3600)
        intruders[0].close()
    assert not intruders, "another session took this session's Redis db while it was emptied"
    assert client.get(services.OWNER_KEY) == owner
