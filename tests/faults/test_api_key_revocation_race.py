"""A key revoked while an API process is reading its record is not kept: the process read
the record (still active), the revocation committed and its message was handled (nothing
to drop yet), and only then the read came back. Keeping what it read would accept the
revoked key for the whole ``HIVE_API_KEY_CACHE_S``. A real `hive api` whose PostgreSQL
link is a proxy that holds the read's answer back; real Redis; a real revoke."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hive import service
from hive.settings import get_settings
from tests.support.api import Api, make_key, refused_soon
from tests.support.tcp_proxy import TcpProxy

# Far longer than the test: a key accepted after its revocation was kept, not still fresh.
LONG_CACHE_S = 600
HELD_S = 30


@pytest.mark.timeout(180)
def test_a_key_revoked_while_its_record_is_read_is_not_kept(
    pg_proxy: tuple[TcpProxy, str], hive_env: dict[str, str], clean_state: None, tmp_path: Path
) -> None:
    proxy, proxied_url = pg_proxy
    # No request rate nor failure allowance: the revoked keys' 401s are expected.
    env = {
        **os.environ,
        **hive_env,
        "HIVE_DATABASE_URL": proxied_url,
        "HIVE_API_KEY_CACHE_S": str(LONG_CACHE_S),
        "HIVE_API_REQUESTS_PER_S": "0",
        "HIVE_API_AUTH_FAILURES_PER_S": "0",
    }
    probe, probe_id = make_key("acme", "viewer")
    doomed, doomed_id = make_key("acme", "viewer")
    canary, canary_id = make_key("acme", "viewer")
    api = Api(env, tmp_path / "api.log")
    try:
        # Revocations reach the process: it has subscribed, and forgotten all it had then.
        assert api.call("GET", "/v1/runs", key=probe).status_code == 200
        revoke(probe_id)
        assert refused_soon(api, probe, timeout_s=30), "the follower never heard a revocation"
        assert api.call("GET", "/v1/runs", key=canary).status_code == 200

        # The first statement naming the doomed key is the read of its record.
        proxy.hold_reply_to(doomed_id.encode())
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(api.call, "GET", "/v1/runs", key=doomed)
            assert proxy.reply_held.wait(HELD_S), "the key's record was never read"
            # PostgreSQL has answered the read: the revocation commits after it.
            revoke(doomed_id)
            # Published after the doomed key's, on the same channel: once the canary is
            # refused, the process has handled the doomed key's message too.
            revoke(canary_id)
            assert refused_soon(api, canary, timeout_s=30), "the canary's revocation was lost"
            proxy.release()
            # In flight as the key was revoked, and read before: accepted, as either is right.
            assert first.result(timeout=HELD_S).status_code == 200

        assert api.call("GET", "/v1/runs", key=doomed).status_code == 401, (
            "the record read before the revocation was kept after it"
        )
    finally:
        proxy.release()
        api.stop()


def revoke(key_id: str) -> None:
    """Revoke as `hive keys revoke` does, from another process than the API's."""
    service.revoke_api_key(get_settings(), service.OPERATOR, key_id)
