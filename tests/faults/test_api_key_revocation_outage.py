"""`hive api` while Redis is away: it goes on serving (kept and never-seen keys alike), a
key revoked meanwhile is refused once its record is ``HIVE_API_KEY_CACHE_S`` old, and once
Redis is back a revocation reaches it at once again. One warning for the outage. A real
`hive api` on a Redis of the test's own, stopped and started again; real PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.support.api import Api, make_key, refused_soon
from tests.support.commands import describe, run_hive
from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer

LOST = "cannot follow API key revocations on Redis"
BACK = "following API key revocations on Redis again"


@pytest.mark.timeout(240)
def test_the_api_serves_while_redis_is_away_and_hears_revocations_again_once_it_is_back(
    own_redis: RedisServer, hive_env: dict[str, str], clean_state: None, tmp_path: Path
) -> None:
    cache_s = 10
    # No request rate nor failure allowance, both kept in Redis: authentication alone is
    # under test, and it needs Redis for nothing.
    farm_env = {
        **os.environ,
        **hive_env,
        "HIVE_BROKER_URL": own_redis.url,
        "HIVE_API_KEY_CACHE_S": str(cache_s),
        "HIVE_API_REQUESTS_PER_S": "0",
        "HIVE_API_AUTH_FAILURES_PER_S": "0",
    }
    kept, _ = make_key("acme", "viewer")
    doomed, doomed_id = make_key("acme", "viewer")
    fresh, _ = make_key("acme", "viewer")
    later, later_id = make_key("acme", "viewer")
    api = Api(farm_env, tmp_path / "api.log")
    try:
        for key in (kept, doomed):
            assert api.call("GET", "/v1/runs", key=key).status_code == 200

        own_redis.stop()
        wait_until(lambda: LOST in api.log(), 30, "the API to notice Redis is away")
        # Cached and never-seen keys alike work; the process is alive and answering.
        for key in (kept, fresh, kept, fresh):
            assert api.call("GET", "/v1/runs", key=key).status_code == 200
        revoked = run_hive("keys", "revoke", doomed_id, env=farm_env)
        assert revoked.returncode == 0, describe(revoked)
        # Not told: refused once its record is stale, as the ttl bounds it.
        wait_until(
            lambda: api.call("GET", "/v1/runs", key=doomed).status_code == 401,
            cache_s + 30,
            "the revoked key to be refused once its record is stale",
        )
        assert api.call("GET", "/v1/runs", key=kept).status_code == 200

        own_redis.start()
        wait_until(lambda: BACK in api.log(), 30, "the API to follow revocations again")
        assert api.call("GET", "/v1/runs", key=later).status_code == 200
        revoked = run_hive("keys", "revoke", later_id, env=farm_env)
        assert revoked.returncode == 0, describe(revoked)
        assert refused_soon(api, later), "the revoked key is still accepted"

        # One warning for the whole outage, however often the follower tried again.
        assert api.log().count(LOST) == 1
        assert api.proc.proc.poll() is None
    except httpx.TransportError:
        raise AssertionError(f"hive api stopped answering:\n{api.log()[-3000:]}") from None
    finally:
        api.stop()
