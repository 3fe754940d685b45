"""Real services for tests: an own PostgreSQL database and an own Redis db index per session."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis
from psycopg2 import sql

from hive.settings import Settings


def missing(reason: str) -> None:
    """Skip locally; fail under CI=true (a missing service there is a broken set-up)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def pg_admin_url() -> str:
    """The server of HIVE_DATABASE_URL (the one `make test` made sure of), database postgres."""
    if "HIVE_TEST_PG_ADMIN_URL" in os.environ:
        return os.environ["HIVE_TEST_PG_ADMIN_URL"]
    url = urlsplit(Settings().database.url.get_secret_value().replace("+psycopg2", ""))
    return urlunsplit(url._replace(path="/postgres"))


def redis_base_url() -> str:
    """The server of HIVE_BROKER_URL, without a db index."""
    if "HIVE_TEST_REDIS_URL" in os.environ:
        return os.environ["HIVE_TEST_REDIS_URL"]
    url = urlsplit(Settings().broker.url.get_secret_value())
    return urlunsplit(url._replace(path=""))


def create_database() -> tuple[str, str]:
    """A fresh database; returns (its name, its SQLAlchemy URL)."""
    admin = pg_admin_url()
    name = f"hive_test_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg2.connect(admin, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        missing(f"PostgreSQL at {admin}: {str(exc).strip()}")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    conn = psycopg2.connect(pg_admin_url(), connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


# The key that marks a db index as a session's: an owned index is never empty (see
# tests.support.db.empty_farm), so no other session takes it.
OWNER_KEY = "hive-test-owner"


def claim_redis_db() -> tuple[redis.Redis, int]:
    """An empty Redis db index (refuses to use one with data in it), marked as ours."""
    base = redis_base_url()
    token = f"hive-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    for index in range(15, 1, -1):
        try:
            client = try_claim_redis_db(index, token)
        except redis.ConnectionError as exc:
            missing(f"Redis at {base}: {exc}")
        if client is not None:
            return client, index
    pytest.fail("no empty Redis db index between 2 and 15 for the tests", pytrace=False)


def try_claim_redis_db(index: int, token: str) -> redis.Redis | None:
    """Db ``index`` marked as ``token``'s if it is empty; None if it is not (another
    session's, or someone's data)."""
    client = redis.Redis.from_url(f"{redis_base_url()}/{index}")
    if client.dbsize() == 0 and client.set(OWNER_KEY, token, nx=True, ex=3600):
        return client
    client.close()
    return None
