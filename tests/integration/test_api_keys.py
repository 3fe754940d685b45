"""API keys through the service layer: only a keyed hash is stored, and a key made under
one pepper authenticates under that pepper alone."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from hive import service
from hive.errors import AuthenticationFailed, InvalidArgument, PermissionDenied
from hive.service import Caller, Role
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
