"""JWTs from a configured issuer authenticate as a key would, for the tenant and role their
claims name; anything else about a token fails as a bad key does."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import SecretStr, ValidationError

from hive import service
from hive.errors import AuthenticationFailed, SettingsError
from hive.service import Caller, Role
from hive.service.tokens import looks_like_token
from hive.settings import ApiSettings, Settings, get_settings, load_settings

ISSUER = "https://id.example.com"
SECRET = "a-shared-secret-of-at-least-32-characters"


def _public_pem(private: Any) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _private_pem(private: Any) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def _settings(key: str | None) -> Settings:
    api = ApiSettings(jwt_key=SecretStr(key) if key else None, jwt_issuer=ISSUER)
    return get_settings().model_copy(update={"api": api})


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "hive",
        "sub": "alice@example.com",
        "exp": now + 300,
        "iat": now,
        "tenant": "acme",
        "role": "producer",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _token(key: Any = EC_KEY, algorithm: str = "ES256", **changes: Any) -> str:
    return jwt.encode(_claims(**changes), key, algorithm=algorithm)


@pytest.mark.parametrize(
    ("configured", "signing", "algorithm"),
    [
        (_public_pem(EC_KEY), EC_KEY, "ES256"),
        (_public_pem(RSA_KEY), RSA_KEY, "RS256"),
        (_public_pem(RSA_KEY), RSA_KEY, "PS384"),
        (_public_pem(ED_KEY), ED_KEY, "EdDSA"),
        (SECRET, SECRET, "HS256"),
    ],
)
def test_a_token_acts_for_the_tenant_and_role_it_names(
    configured: str, signing: Any, algorithm: str
) -> None:
    token = _token(signing, algorithm)
    assert looks_like_token(token)

    who = service.authenticate(_settings(configured), token)

    assert who.key_id == "jwt:alice@example.com"
    assert who.caller == Caller("acme", Role.PRODUCER)
    viewer = service.authenticate(_settings(configured), _token(signing, algorithm, role="viewer"))
    assert viewer.caller == Caller("acme", Role.VIEWER)


def test_a_long_subject_is_named_by_its_digest_within_the_audit_column() -> None:
    who = service.authenticate(_settings(_public_pem(EC_KEY)), _token(sub="x" * 200))
    assert who.key_id.startswith("jwt:#")
    assert len(who.key_id) == 32


def _unsigned(**changes: Any) -> str:
    return jwt.encode(_claims(**changes), None, algorithm="none")


OTHER_EC = ec.generate_private_key(ec.SECP256R1())
BAD_TOKENS = {
    "signed by another key": lambda: _token(OTHER_EC),
    "unsigned (alg none)": lambda: _unsigned(),
    "HMAC with the public key as secret": lambda: _hmac_with_public_key(),
    "expired": lambda: _token(exp=int(time.time()) - 120),
    "not yet valid": lambda: _token(nbf=int(time.time()) + 120),
    "another issuer": lambda: _token(iss="https://evil.example.com"),
    "another audience": lambda: _token(aud="someone-else"),
    "no expiry": lambda: _token(exp=None),
    "no subject": lambda: _token(sub=None),
    "no audience": lambda: _token(aud=None),
    "the operator's role": lambda: _token(role="operator"),
    "an unknown role": lambda: _token(role="root"),
    "no role": lambda: _token(role=None),
    "no tenant": lambda: _token(tenant=None),
    "a tenant no run could be stored under": lambda: _token(tenant="a\x00b"),
    "a tenant that is not a string": lambda: _token(tenant=["acme"]),
    "a truncated signature": lambda: _token()[:-10],
}


def _hmac_with_public_key() -> str:
    """The classic confusion: HS256 keyed with the RSA/EC public key's PEM text."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(_claims()).encode())
    mac = hmac.new(_public_pem(EC_KEY).encode(), f"{head}.{body}".encode(), hashlib.sha256)
    return f"{head}.{body}.{b64(mac.digest())}"


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_any_bad_token_fails_as_a_bad_key_does(case: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        service.authenticate(_settings(_public_pem(EC_KEY)), BAD_TOKENS[case]())
    assert str(caught.value) == "missing or invalid API key"


def test_tokens_are_refused_unless_a_key_is_configured() -> None:
    with pytest.raises(AuthenticationFailed):
        service.authenticate(_settings(None), _token())
    with pytest.raises(AuthenticationFailed):
        service.authenticate(_settings(SECRET), _token())  # an ES256 token, an HMAC key


def test_a_bad_token_configuration_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = {
        _private_pem(EC_KEY): ("HIVE_API_JWT_KEY", "private key"),
        "too-short-a-secret": ("HIVE_API_JWT_KEY", "at least 32 characters"),
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----": (
            "HIVE_API_JWT_KEY",
            "not a PEM public key",
        ),
    }
    for key, (variable, words) in cases.items():
        monkeypatch.setenv("HIVE_API_JWT_KEY", key)
        monkeypatch.setenv("HIVE_API_JWT_ISSUER", ISSUER)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert variable in str(caught.value)
        assert words in str(caught.value)
        assert key not in str(caught.value)

    monkeypatch.setenv("HIVE_API_JWT_KEY", SECRET)
    monkeypatch.delenv("HIVE_API_JWT_ISSUER")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "HIVE_API_JWT_ISSUER" in str(caught.value)
    assert "required when HIVE_API_JWT_KEY is set" in str(caught.value)
    assert SECRET not in str(caught.value)

    monkeypatch.setenv("HIVE_API_JWT_ISSUER", ISSUER)
    loaded = load_settings().api
    assert loaded.jwt_key is not None
    assert (loaded.jwt_issuer, loaded.jwt_audience) == (ISSUER, "hive")
    monkeypatch.delenv("HIVE_API_JWT_ISSUER")
    with pytest.raises(ValidationError):
        ApiSettings(jwt_key=SecretStr(SECRET))  # no issuer
