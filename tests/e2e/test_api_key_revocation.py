"""A key revoked with `hive keys revoke` is refused by every `hive api` process at once,
though each keeps the key records it read (``HIVE_API_KEY_CACHE_S``): the revocation is
published on Redis and each process drops the record. Real `hive api` processes, real
PostgreSQL and Redis. With Redis away: tests/faults/test_api_key_revocation_outage.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from hive.keys import key_revocations
from hive.settings import get_settings
from tests.support.api import Api, create_key, refused_soon
from tests.support.commands import describe, run_hive

# Far longer than any test here runs: a key still accepted after its revocation is one the
# API was not told of, not one whose record went stale.
LONG_CACHE_S = 600


@pytest.fixture(scope="module")
def api(hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # No failure allowance: the revoked key's many 401s are expected here, not a flood.
    env = {
        **os.environ,
        **hive_env,
        "HIVE_API_KEY_CACHE_S": str(LONG_CACHE_S),
        "HIVE_API_AUTH_FAILURES_PER_S": "0",
    }
    # Two worker processes: each keeps its own records, and each must be told.
    server = Api(env, tmp_path_factory.mktemp("api") / "api.log", "--workers", "2")
    yield server
    server.stop()


def test_a_key_revoked_with_the_cli_is_refused_by_every_api_process_at_once(
    api: Api, env: dict[str, str], hive_env: dict[str, str], redis_db: tuple[redis.Redis, int]
) -> None:
    key, key_id = create_key(env, "--tenant", "acme", "--role", "viewer")
    # Enough calls that both processes have read the key's record and keep it.
    for _ in range(20):
        assert api.call("GET", "/v1/runs", key=key).status_code == 200
    listener = redis.Redis.from_url(hive_env["HIVE_BROKER_URL"]).pubsub()
    listener.subscribe(key_revocations(get_settings().broker.key_prefix, redis_db[1]))
    try:
        revoked = run_hive("keys", "revoke", key_id, env=env)
        assert revoked.returncode == 0, describe(revoked)

        assert refused_soon(api, key), "the revoked key is still accepted"
        # Whichever process answers: both were told.
        assert {api.call("GET", "/v1/runs", key=key).status_code for _ in range(20)} == {401}

        # The channel carries the key's id alone: never the key, nor its hash.
        published = []
        while (message := listener.get_message(timeout=1.0)) is not None:
            if message["type"] == "message":
                published.append(message["data"].decode())
        assert key_id in published
        assert all(len(data) == 16 for data in published), published
    finally:
        listener.close()
    assert key not in api.log()
