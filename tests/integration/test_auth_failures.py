"""A client address's failed authentications, through the service layer with real Redis and
PostgreSQL: a well-formed key from an address that failed too often is refused before it is
looked up, successes spend nothing, and a key id found to be no key is not looked up again
for a while. Over HTTP, across two `hive api` processes: tests/e2e/test_api_admission.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from hive import service
from hive.db.engine import get_engine
from hive.errors import AuthenticationFailed, TooManyRequests
from hive.service import api_keys
from hive.settings import Settings, get_settings

BURST = 3
# So slow that no failure is given back while a test runs: the counts never depend on time.
PER_S = 0.001
FLOOD = "203.0.113.7"
OTHER = "198.51.100.9"


def _settings() -> Settings:
    settings = get_settings()
    api = settings.api.model_copy(
        update={"auth_failures_per_s": PER_S, "auth_failure_burst": BURST}
    )
    return settings.model_copy(update={"api": api})


def _made_up() -> str:
    return f"hive_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


@pytest.fixture
def lookups(clean_state: None) -> Iterator[list[str]]:
    """The key lookups PostgreSQL is sent (statements reading api_keys by id)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM api_keys WHERE id" in statement:
            seen.append(statement)

    engines = [get_engine(), get_engine(autocommit=True)]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", note)


def test_an_address_that_failed_too_often_is_refused_before_its_key_is_looked_up(
    lookups: list[str],
) -> None:
    settings = _settings()
    for _ in range(BURST):
        with pytest.raises(AuthenticationFailed):
            service.authenticate(settings, _made_up(), client=FLOOD)
    assert len(lookups) == BURST

    for _ in range(5):
        with pytest.raises(TooManyRequests) as refused:
            service.authenticate(settings, _made_up(), client=FLOOD)
        # One failure comes back every 1000 s.
        assert 990 <= refused.value.retry_after_s <= 1000
        assert "failed authentications from this address" in str(refused.value)
        assert refused.value.limit == 0  # no RateLimit-* headers: that is the tenant's rate
    assert len(lookups) == BURST
    # What costs no lookup is answered as ever: the same 401.
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, "hive_not-a-key", client=FLOOD)

    # Another address has its own allowance; an in-process caller (no address), none.
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, _made_up(), client=OTHER)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, _made_up())
    assert len(lookups) == BURST + 2


def test_successes_spend_nothing_and_a_key_that_authenticated_before_is_never_held_back(
    lookups: list[str],
) -> None:
    settings = _settings()
    made = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    fresh = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    for _ in range(3 * BURST):
        assert service.authenticate(settings, made.key, client=FLOOD).key_id == made.view.id
    for _ in range(BURST):
        with pytest.raises(AuthenticationFailed):
            service.authenticate(settings, _made_up(), client=FLOOD)

    # Every record stale, as HIVE_API_KEY_CACHE_S after it was read: each is read again.
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"key_cache_s": 0.0})}
    )
    before = len(lookups)
    assert service.authenticate(settings, made.key, client=FLOOD).key_id == made.view.id
    assert len(lookups) == before + 1
    # Its id with another secret is no key that authenticated here, nor is a key never used
    # from this process: the address is held back for them.
    wrong_secret = made.key[:-4] + ("AAAA" if not made.key.endswith("AAAA") else "BBBB")
    for presented in (wrong_secret, fresh.key):
        with pytest.raises(TooManyRequests):
            service.authenticate(settings, presented, client=FLOOD)
    assert len(lookups) == before + 1
    assert service.authenticate(settings, fresh.key, client=OTHER).key_id == fresh.view.id


def test_a_key_id_that_is_no_key_is_looked_up_once_per_key_cache_delay(
    lookups: list[str],
) -> None:
    settings = get_settings()
    stale = _made_up()
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            service.authenticate(settings, stale)
    assert len(lookups) == 1

    made = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    service.revoke_api_key(settings, service.OPERATOR, made.view.id)
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            service.authenticate(settings, made.key)
    assert len(lookups) == 2


def test_a_key_made_after_its_id_was_presented_works_at_once(lookups: list[str]) -> None:
    """The improbable case of a new key's random id already presented (and remembered as no
    key) by this process: making the key forgets that."""
    settings = get_settings()
    key_id = secrets.token_hex(8)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, f"hive_{key_id}_{secrets.token_urlsafe(32)}")

    ids = iter([key_id])
    real_token_hex = secrets.token_hex
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            api_keys.secrets, "token_hex", lambda n=None: next(ids, None) or real_token_hex(n)
        )
        made = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    assert made.view.id == key_id
    assert service.authenticate(settings, made.key).key_id == key_id
