"""JSON Web Tokens from the farm's identity provider, accepted wherever an API key is.

For single sign-on set-ups: the identity provider signs a token with its key, and `hive
api` checks it with ``HIVE_API_JWT_KEY`` (the provider's public key, or a secret both
share). A token acts for the ``tenant`` and ``role`` its claims name, as a key would:
``viewer``, ``producer`` or ``admin`` of one tenant (crossing tenants stays an operator
key's). It must carry ``exp``, ``sub``, the configured ``iss`` and ``aud``; ``nbf`` and
``iat`` are checked when present, with 30 seconds of leeway for clocks. The algorithm
follows from the key's type, never from the token (no ``none``, no HMAC with a public
key). Whatever is wrong, the caller hears the same 401 as for a bad key.

PyJWT (with ``cryptography``) comes with the ``api`` extra and is imported only when a
token is checked.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any

from hive.errors import AuthenticationFailed
from hive.service.caller import Caller, Role
from hive.settings import ApiSettings

LEEWAY_S = 30
"""How far a token's ``exp``, ``nbf`` and ``iat`` may be off the server's clock."""

# header.payload.signature, each base64url without padding.
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ROLES = frozenset({Role.VIEWER, Role.PRODUCER, Role.ADMIN})
_HMAC = ["HS256", "HS384", "HS512"]
_REQUIRED = ["exp", "sub", "iss", "aud"]
# The audit trail's key id column holds this many characters.
_ID_MAX = 32


def looks_like_token(presented: str) -> bool:
    """Whether ``presented`` has a JWT's shape (an API key never does)."""
    return len(presented) <= 16_384 and _SHAPE.fullmatch(presented) is not None


def token_caller(api: ApiSettings, token: str) -> tuple[str, Caller]:
    """The id the audit trail names a token's subject by, and the caller it acts as.

    Raises:
        AuthenticationFailed: JWTs are not configured, or the token is malformed, signed
            by another key or algorithm, expired, not yet valid, for another issuer or
            audience, or names no tenant or a role a token may not have.
    """
    if api.jwt_key is None:
        raise AuthenticationFailed()
    import jwt  # the api extra's

    key, algorithms = _verifier(api.jwt_key.get_secret_value())
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=api.jwt_audience,
            issuer=api.jwt_issuer,
            leeway=LEEWAY_S,
            options={"require": _REQUIRED},
        )
    except jwt.PyJWTError:
        raise AuthenticationFailed() from None
    subject, tenant, role = claims.get("sub"), claims.get("tenant"), claims.get("role")
    if not isinstance(subject, str) or not subject or role not in _ROLES:
        raise AuthenticationFailed()
    try:
        caller = Caller(tenant if isinstance(tenant, str) else "", Role(role))
    except ValueError:  # a tenant no run could be stored under
        raise AuthenticationFailed() from None
    return _subject_id(subject), caller


def _subject_id(subject: str) -> str:
    """``jwt:<sub>``, or ``jwt:#`` and a digest of it when it is long or not printable."""
    readable = f"jwt:{subject}"
    if len(readable) <= _ID_MAX and subject.isprintable():
        return readable
    # surrogatepass: a lone surrogate is valid JSON, and a subject's bytes only feed a digest.
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()
    return "jwt:#" + digest[: _ID_MAX - 5]


@lru_cache(maxsize=4)
def _verifier(configured: str) -> tuple[Any, list[str]]:
    """The key a token's signature is checked with, and the algorithms its type allows."""
    if not configured.startswith("-----BEGIN"):
        return configured, _HMAC
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(configured.encode())
    except ValueError:
        raise AuthenticationFailed() from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key, ["ES256", "ES384", "ES512"]
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key, ["EdDSA"]
    raise AuthenticationFailed()
