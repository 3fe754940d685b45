"""Single sign-on: a `hive api` given its identity provider's public key takes that
provider's JWTs as it takes keys. A real `hive api` process, real PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hive.client import Client
from hive.errors import PermissionDenied
from tests.support.api import Api, make_key
from tests.support.commands import run_hive

ISSUER = "https://id.example.com"
PROVIDER = ec.generate_private_key(ec.SECP256R1())
PUBLIC_PEM = (
    PROVIDER.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture(scope="module")
def api(hive_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    env = {
        **os.environ,
        **hive_env,
        "HIVE_API_JWT_KEY": PUBLIC_PEM,
        "HIVE_API_JWT_ISSUER": ISSUER,
        "HIVE_API_JWT_AUDIENCE": "hive-test",
    }
    server = Api(env, tmp_path_factory.mktemp("api") / "api.log")
    yield server
    server.stop()


def _token(tenant: str, role: str, subject: str = "alice", **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "hive-test",
        "sub": subject,
        "iat": now,
        "exp": now + 300,
        "tenant": tenant,
        "role": role,
        **changes,
    }
    return jwt.encode(claims, PROVIDER, algorithm="ES256")


def _submit(api: Api, credential: str) -> Any:
    body = {"pipeline": "echo-one", "input": {"text": "hi"}}
    return api.call("POST", "/v1/runs", key=credential, json=body)


def test_a_token_submits_and_reads_within_its_tenant_and_role(
    api: Api, env: dict[str, str]
) -> None:
    producer = _token("acme", "producer")
    submitted = _submit(api, producer)
    assert submitted.status_code == 202, submitted.text
    run_id = submitted.json()["id"]

    assert api.call("GET", f"/v1/runs/{run_id}", key=producer).status_code == 200
    viewer = _token("acme", "viewer", subject="bob")
    assert api.call("GET", f"/v1/runs/{run_id}", key=viewer).status_code == 200
    assert _submit(api, viewer).status_code == 403
    outsider = _token("globex", "admin", subject="carol")
    assert api.call("GET", f"/v1/runs/{run_id}", key=outsider).status_code == 404
    assert api.call("GET", "/v1/runs", key=outsider).json()["runs"] == []

    # A key of the same tenant and a token see the same runs.
    key, _ = make_key("acme", "viewer")
    listed = api.call("GET", "/v1/runs", key=key).json()["runs"]
    assert [r["id"] for r in listed] == [run_id]

    # The Python client speaks to the API with a token as with a key.
    with Client(base_url=api.base_url, api_key=producer) as client:
        assert str(client.get(run_id).id) == run_id
    with Client(base_url=api.base_url, api_key=viewer) as client, pytest.raises(PermissionDenied):
        client.submit("echo-one", {"text": "no"})

    audit = run_hive("audit", "list", "--tenant", "acme", "--json", env=env)
    records = [
        (r["key_id"], r["role"], r["action"], r["outcome"]) for r in json.loads(audit.stdout)
    ]
    assert ("jwt:alice", "producer", "run.submit", "ok") in records
    assert ("jwt:bob", "viewer", "run.submit", "denied") in records
    for secret in (producer, viewer, outsider):
        assert secret not in api.log() + audit.stdout


def test_bad_tokens_are_the_same_401_as_a_bad_key(api: Api, env: dict[str, str]) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    bad = [
        _token("acme", "producer", exp=now - 60),
        _token("acme", "producer", aud="hive"),
        _token("acme", "producer", iss="https://other.example.com"),
        _token("acme", "operator"),
        jwt.encode({"iss": ISSUER, "aud": "hive-test", "sub": "x", "exp": now + 60,
                    "tenant": "acme", "role": "admin"}, other, algorithm="ES256"),
        "hive_0123456789abcdef_" + "A" * 43,
    ]  # fmt: skip
    answers = [api.call("GET", "/v1/runs", key=token) for token in bad]
    assert [a.status_code for a in answers] == [401] * len(bad)
    assert len({a.text for a in answers}) == 1


def test_a_token_whose_claims_no_run_could_carry_is_a_401_or_works_never_a_500(
    api: Api, env: dict[str, str]
) -> None:
    """A lone surrogate (valid JSON, no UTF-8) in a signed token's tenant went on to Redis
    and PostgreSQL, which cannot encode it; in its subject, to the audit id's digest."""
    tenant = api.call("GET", "/v1/runs", key=_token("acme\ud800", "viewer"))
    subject = api.call("GET", "/v1/runs", key=_token("acme", "viewer", subject="al\ud800ice"))

    assert tenant.status_code == 401, tenant.text
    assert tenant.json() == {
        "error": {"type": "unauthorized", "message": "missing or invalid API key"}
    }
    assert subject.status_code == 200, subject.text
