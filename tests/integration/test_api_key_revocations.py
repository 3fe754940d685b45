"""Revocations over Redis pub/sub, between the real follower and publisher of this process:
a farm hears its own and no other's, though pub/sub is one for the whole server. Real Redis.
Whole `hive api` processes: tests/e2e/test_api_key_revocation.py."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
import redis
from pydantic import SecretStr

from hive.service.revocations import RevocationFollower, announce_revocation
from hive.settings import Settings, get_settings
from tests.support.processes import wait_until
from tests.support.services import redis_base_url


class Heard:
    """What a follower was told to forget, in order (None: everything, as it subscribed)."""

    def __init__(self) -> None:
        self.forgotten: list[str | None] = []
        self._lock = threading.Lock()

    def __call__(self, key_id: str | None) -> None:
        with self._lock:
            self.forgotten.append(key_id)

    def __contains__(self, key_id: object) -> bool:
        with self._lock:
            return key_id in self.forgotten

    def __repr__(self) -> str:
        with self._lock:
            return f"<Heard {self.forgotten}>"


def _on_db(settings: Settings, index: int) -> Settings:
    broker = settings.broker.model_copy(update={"url": SecretStr(f"{redis_base_url()}/{index}")})
    return settings.model_copy(update={"broker": broker})


@pytest.fixture
def followers() -> Iterator[list[RevocationFollower]]:
    started: list[RevocationFollower] = []
    yield started
    for follower in started:
        follower.stop()


def test_a_farm_hears_the_revocations_of_its_own_redis_db_index_alone(
    hive_env: dict[str, str],
    redis_db: tuple[redis.Redis, int],
    followers: list[RevocationFollower],
) -> None:
    _, index = redis_db
    # Another farm on the same server, under the same key prefix: only pub/sub is shared,
    # so nothing is written to that index (the tests claim 2 to 15).
    farms = [_on_db(get_settings(), index), _on_db(get_settings(), 1)]
    heard = [Heard(), Heard()]
    for farm, ears in zip(farms, heard, strict=True):
        followers.append(RevocationFollower(farm, ears))
        followers[-1].start()
    for ears in heard:
        wait_until(lambda ears=ears: None in ears, 10, "the follower to subscribe")

    ours, theirs = secrets.token_hex(8), secrets.token_hex(8)
    announce_revocation(farms[0], ours)
    announce_revocation(farms[1], theirs)
    wait_until(lambda: ours in heard[0] and theirs in heard[1], 10, "each farm's revocation")
    # Redis delivers a connection's messages in the order they were published: had ours
    # reached the other farm, it would have come before theirs.
    assert ours not in heard[1]
    assert theirs not in heard[0]
