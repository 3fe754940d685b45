"""API keys through the service layer: only a keyed hash is stored, and a key made under
one pepper authenticates under that pepper alone."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from pydantic import SecretStr

from hive import service
from hive.errors import AuthenticationFailed, InvalidArgument, PermissionDenied
from hive.service import Caller, Role, api_keys
from hive.settings import ApiSettings, Settings, get_settings
from tests.support import db

PEPPER = "a-server-secret-of-some-length"


def _with_pepper(pepper: str | None) -> Settings:
    settings = get_settings()
    api = ApiSettings(key_pepper=SecretStr(pepper) if pepper else None)
    return settings.model_copy(update={"api": api})


def test_a_key_is_stored_as_its_hmac_and_authenticates_under_its_pepper_alone(
    clean_state: None,
) -> None:
    peppered = _with_pepper(PEPPER)
    made = service.create_api_key(
        peppered, service.OPERATOR, tenant="acme", role="producer", name="shop"
    )

    stored = db.scalar("SELECT hash FROM api_keys WHERE id = :id", id=made.view.id)
    expected = hmac.new(PEPPER.encode(), made.key.encode(), hashlib.sha256).hexdigest()
    assert stored == expected
    assert made.key not in repr(made)
    who = service.authenticate(peppered, made.key)
    assert (who.key_id, who.caller) == (made.view.id, Caller("acme", Role.PRODUCER))
    for other in (_with_pepper(None), _with_pepper("another-secret-entirely")):
        with pytest.raises(AuthenticationFailed):
            service.authenticate(other, made.key)
    assert db.scalar("SELECT last_used_at IS NOT NULL FROM api_keys") is True


def test_without_a_pepper_the_hash_is_sha256(clean_state: None) -> None:
    plain = _with_pepper(None)
    made = service.create_api_key(plain, service.OPERATOR, tenant=None, role="operator")

    stored = db.scalar("SELECT hash FROM api_keys WHERE id = :id", id=made.view.id)
    assert stored == hashlib.sha256(made.key.encode()).hexdigest()
    assert service.authenticate(plain, made.key).caller == service.OPERATOR


@pytest.mark.parametrize(
    "presented", [None, "", "hive_", "hive_zzzzzzzzzzzzzzzz_" + "a" * 43, "Bearer x", "x" * 5000]
)
def test_anything_but_a_key_fails_alike(clean_state: None, presented: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        service.authenticate(get_settings(), presented)
    assert str(caught.value) == "missing or invalid API key"


def test_keys_are_the_operators_to_make_and_must_fit_their_tenant(clean_state: None) -> None:
    settings = get_settings()
    admin = Caller("acme", Role.ADMIN)
    with pytest.raises(PermissionDenied):
        service.create_api_key(settings, admin, tenant="acme", role="viewer")
    with pytest.raises(PermissionDenied):
        service.list_api_keys(settings, admin)
    for tenant, role, expires in [
        (None, "viewer", None),
        ("acme", "operator", None),
        ("acme", "root", None),
        ("", "viewer", None),
        ("acme", "viewer", -1),
    ]:
        with pytest.raises(InvalidArgument):
            service.create_api_key(
                settings, service.OPERATOR, tenant=tenant, role=role, expires_in_s=expires
            )
    assert db.scalar("SELECT count(*) FROM api_keys") == 0


def _keeping_records(cache_s: float) -> Settings:
    settings = get_settings()
    api = settings.api.model_copy(update={"key_cache_s": cache_s})
    return settings.model_copy(update={"api": api})


def test_a_key_revoked_by_another_process_stops_working_once_its_record_is_stale(
    clean_state: None,
) -> None:
    settings = _keeping_records(0.5)
    made = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    assert service.authenticate(settings, made.key).key_id == made.view.id
    # As `hive keys revoke` in another process does: this one's record is not dropped.
    db.execute("UPDATE api_keys SET revoked_at = now() WHERE id = :id", id=made.view.id)

    time.sleep(0.6)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, made.key)


def test_a_key_revoked_in_this_process_stops_working_at_once(clean_state: None) -> None:
    settings = get_settings()
    made = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    service.authenticate(settings, made.key)

    service.revoke_api_key(settings, service.OPERATOR, made.view.id)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, made.key)


def test_a_kept_key_record_still_expires_on_time_and_still_checks_the_secret(
    clean_state: None,
) -> None:
    settings = _keeping_records(3600.0)
    made = service.create_api_key(
        settings, service.OPERATOR, tenant="acme", role="viewer", expires_in_s=1.5
    )
    service.authenticate(settings, made.key)
    wrong_secret = made.key[:-4] + ("AAAA" if not made.key.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, wrong_secret)

    time.sleep(1.6)
    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, made.key)


def test_a_wrong_secret_is_no_use_of_the_key(clean_state: None) -> None:
    """A guess at a key's secret, its id right, was recorded as a use (last_used_at): the
    record was touched when read, before the secret was checked."""
    settings = get_settings()
    made = service.create_api_key(settings, service.OPERATOR, tenant="acme", role="viewer")
    api_keys.forget_key()
    wrong_secret = made.key[:-4] + ("AAAA" if not made.key.endswith("AAAA") else "BBBB")

    with pytest.raises(AuthenticationFailed):
        service.authenticate(settings, wrong_secret)
    assert db.scalar("SELECT last_used_at FROM api_keys") is None

    # The record the guess read is kept: the key's own use is recorded all the same.
    service.authenticate(settings, made.key)
    assert db.scalar("SELECT last_used_at IS NOT NULL FROM api_keys") is True
