"""The section of `hive api`, the HTTP producer API, and its keys."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationInfo, field_validator

from hive.settings.fields import Section, split_list, var


class ApiSettings(Section):
    """`hive api`: the HTTP producer API and its keys."""

    host: str = var(
        "API_HOST",
        "the address `hive api` listens on (`--host` overrides); loopback unless told otherwise",
        default="127.0.0.1",
        min_length=1,
    )
    port: int = var(
        "API_PORT",
        "the port `hive api` listens on (`--port` overrides)",
        default=8080,
        ge=1,
        le=65535,
    )
    # Keys are 256 random bits: a fast keyed hash is as good as a slow one against guessing,
    # and the pepper keeps a stolen table useless without the server's secret.
    key_pepper: SecretStr | None = var(
        "API_KEY_PEPPER",
        "the server secret API keys are hashed with (HMAC-SHA256; at least 16 characters); "
        "empty: plain SHA-256. Changing it invalidates every key",
        default=None,
    )
    key_cache_s: float = var(
        "API_KEY_CACHE_S",
        "how long a `hive api` process trusts an API key's record it read from PostgreSQL; a "
        "revoked key is dropped at once while Redis is reachable, within this otherwise",
        default=5.0,
        ge=0,
        le=3600,
    )
    max_body_bytes: int = var(
        "API_MAX_BODY_BYTES",
        "the largest request body `hive api` reads; larger is refused with 413. `hive api` "
        "refuses to start when it is less than `HIVE_MAX_INPUT_BYTES` + 4096 (the rest of a "
        "submit's body)",
        default=2_000_000,
        gt=0,
    )
    requests_per_s: float = var(
        "API_REQUESTS_PER_S",
        "each tenant's sustained request rate across every `hive api` process (shared "
        "through Redis); over it, 429 with `Retry-After`. 0: no limit",
        default=50.0,
        ge=0,
    )
    request_burst: int = var(
        "API_REQUEST_BURST",
        "the requests a tenant may make at once, idle, above `HIVE_API_REQUESTS_PER_S` "
        "(the `RateLimit-Limit` it is told)",
        default=100,
        ge=1,
    )
    auth_failures_per_s: float = var(
        "API_AUTH_FAILURES_PER_S",
        "the failed authentications a client address may go on making per second, across every "
        "`hive api` process (shared through Redis), once its burst is spent; over it, a key "
        "that would be looked up in PostgreSQL is answered 429 with `Retry-After` instead. "
        "0: no limit",
        default=1.0,
        ge=0,
    )
    auth_failure_burst: int = var(
        "API_AUTH_FAILURE_BURST",
        "the failed authentications a client address may make at once, idle, before "
        "`HIVE_API_AUTH_FAILURES_PER_S` holds it back",
        default=20,
        ge=1,
    )
    max_runs_in_flight: int = var(
        "API_MAX_RUNS_IN_FLIGHT",
        "the unfinished runs a tenant may have when it submits over the API; more is "
        "refused with 429 until some finish. 0: no cap",
        default=10_000,
        ge=0,
    )
    # Single sign-on: tokens an identity provider signs, accepted where a key is.
    jwt_key: SecretStr | None = var(
        "API_JWT_KEY",
        "the key JWTs are verified with: an issuer's PEM public key (RSA, EC or Ed25519) or a "
        "shared secret of at least 32 characters (HMAC); empty: JWTs are refused",
        default=None,
    )
    jwt_issuer: str = var(
        "API_JWT_ISSUER",
        "the `iss` a JWT must carry (required with `HIVE_API_JWT_KEY`)",
        default="",
        validate_default=True,
    )
    jwt_audience: str = var(
        "API_JWT_AUDIENCE",
        "the `aud` a JWT must name",
        default="hive",
        min_length=1,
    )
    trusted_proxies: str = var(
        "API_TRUSTED_PROXIES",
        "comma-separated addresses or networks (`10.0.0.0/8`) of the proxies in front of "
        "`hive api`: from them alone `X-Forwarded-For` names the client (the audit trail's "
        "address, the failed-authentication limit); empty: the connection's peer",
        default="",
    )
    cors_origins: str = var(
        "API_CORS_ORIGINS",
        "comma-separated origins (`https://app.example.com`) browsers may call the API from; "
        "empty: CORS off",
        default="",
    )

    @field_validator("key_pepper")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        value = secret.get_secret_value() if secret else ""
        if value and len(value) < 16:
            raise ValueError("must be at least 16 characters (or empty)")
        return secret if value else None

    @field_validator("jwt_key")
    @classmethod
    def _verifying_key(cls, secret: SecretStr | None) -> SecretStr | None:
        value = secret.get_secret_value().strip() if secret else ""
        if not value:
            return None
        if value.startswith("-----BEGIN"):
            if "PRIVATE KEY" in value.split("\n", 1)[0]:
                raise ValueError("is a private key: give the issuer's public key")
            try:  # cryptography comes with the api extra, which `hive api` needs anyway
                from cryptography.hazmat.primitives.serialization import load_pem_public_key
            except ImportError:
                return SecretStr(value)
            try:
                load_pem_public_key(value.encode())
            except (ValueError, TypeError):
                raise ValueError("is not a PEM public key this server can read") from None
        elif len(value) < 32:
            raise ValueError("must be a PEM public key or a secret of at least 32 characters")
        return SecretStr(value)

    @field_validator("jwt_issuer")
    @classmethod
    def _issuer_with_key(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("jwt_key") is not None and not value.strip():
            raise ValueError("is required when HIVE_API_JWT_KEY is set")
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for proxy in split_list(value):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an address or a network (`*` is not accepted: any "
                    "client could then name itself)"
                ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in split_list(value):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"{origin!r} is not an origin (scheme://host[:port]; `*` is not accepted)"
                )
        return value

    @property
    def origins(self) -> list[str]:
        return split_list(self.cors_origins)

    @property
    def proxies(self) -> list[str]:
        return split_list(self.trusted_proxies)
