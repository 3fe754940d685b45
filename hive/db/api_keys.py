"""API keys and the audit trail: the SQL of ``hive keys``, ``hive audit`` and the HTTP API's
authentication.

Every time is PostgreSQL's ``now()``: whether a key has expired, and when it was last used,
are judged by one clock whatever the API hosts' clocks say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text

from hive.db.models import audit

# last_used_at is written at most this often per key: a key used for every request would
# otherwise turn each read into a write.
_TOUCH_EVERY_S = 60


@dataclass(frozen=True)
class KeyRow:
    id: str
    tenant: str | None
    role: str
    name: str
    hash: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    expired: bool
    """``expires_at`` is past, by PostgreSQL's clock."""
    used_lately: bool
    """A use was recorded in the last minute: :func:`touch_key` has nothing to do."""


_KEY_COLUMNS = text(
    "id, tenant, role, name, hash, created_at, expires_at, revoked_at, last_used_at, "
    "coalesce(expires_at <= now(), false) AS expired, "
    f"coalesce(last_used_at >= now() - interval '{_TOUCH_EVERY_S} seconds', false) AS used_lately"
)


def _key(row: Any) -> KeyRow:
    return KeyRow(**row._mapping)


def insert_key(
    conn: Connection,
    *,
    key_id: str,
    tenant: str | None,
    role: str,
    name: str,
    key_hash: str,
    expires_in_s: float | None,
) -> KeyRow:
    """Store a new key's hash; ``expires_in_s`` from now (PostgreSQL's), None: never."""
    row = conn.execute(
        text(
            f"""
            INSERT INTO api_keys (id, tenant, role, name, hash, expires_at)
            VALUES (:id, :tenant, :role, :name, :hash,
                    now() + make_interval(secs => CAST(:expires_in_s AS double precision)))
            RETURNING {_KEY_COLUMNS}
            """
        ),
        {
            "id": key_id,
            "tenant": tenant,
            "role": role,
            "name": name,
            "hash": key_hash,
            "expires_in_s": expires_in_s,
        },
    ).one()
    return _key(row)


def find_key(conn: Connection, key_id: str) -> KeyRow | None:
    row = conn.execute(
        text(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = :id"), {"id": key_id}
    ).first()
    return None if row is None else _key(row)


def touch_key(conn: Connection, key_id: str) -> None:
    """Record a use of the key, unless one was recorded in the last minute."""
    conn.execute(
        text(
            """
            UPDATE api_keys SET last_used_at = now()
             WHERE id = :id
               AND (last_used_at IS NULL
                    OR last_used_at < now() - make_interval(secs => :every))
            """
        ),
        {"id": key_id, "every": float(_TOUCH_EVERY_S)},
    )


def list_keys(conn: Connection, *, tenant: str | None) -> list[KeyRow]:
    """Every key (``tenant`` None) or one tenant's, oldest first, revoked ones included."""
    where = "" if tenant is None else "WHERE tenant = :tenant"
    rows = conn.execute(
        text(f"SELECT {_KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, id"),
        {"tenant": tenant},
    )
    return [_key(row) for row in rows]


def revoke_key(conn: Connection, key_id: str, *, tenant: str | None) -> KeyRow | None:
    """Revoke the key (a second revoke keeps the first time); None if no such key is the
    tenant's (``tenant`` None: any key)."""
    scope = "" if tenant is None else "AND tenant = :tenant"
    row = conn.execute(
        text(
            f"""
            UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE id = :id {scope}
            RETURNING {_KEY_COLUMNS}
            """
        ),
        {"id": key_id, "tenant": tenant},
    ).first()
    return None if row is None else _key(row)


@dataclass(frozen=True)
class AuditRow:
    id: int
    key_id: str | None
    tenant: str | None
    role: str
    action: str
    target: str | None
    outcome: str
    client: str | None
    at: datetime


def insert_audit(
    conn: Connection,
    *,
    key_id: str | None,
    tenant: str | None,
    role: str,
    action: str,
    target: str | None,
    outcome: str,
    client: str | None,
) -> None:
    conn.execute(
        insert(audit).values(
            key_id=key_id,
            tenant=tenant,
            role=role,
            action=action,
            target=target,
            outcome=outcome,
            client=client,
        )
    )


def list_audit(
    conn: Connection, *, tenant: str | None, since: datetime | None, limit: int
) -> list[AuditRow]:
    """Newest first; ``tenant`` None: every tenant's records (the operator's among them)."""
    query = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(audit.c.tenant == tenant)
    if since is not None:
        query = query.where(audit.c.at >= since)
    return [AuditRow(**row._mapping) for row in conn.execute(query)]


_PURGE_AUDIT = text(
    """
    DELETE FROM audit
     WHERE id IN (
        SELECT id FROM audit
         WHERE at < now() - make_interval(days => :days)
         ORDER BY at
         LIMIT :batch
     )
    """
)


def purge_audit_batch(conn: Connection, days: int, batch: int) -> int:
    """Delete at most ``batch`` of the oldest audit records older than ``days``; how many.
    The caller commits between batches, so no purge holds many rows' locks for long."""
    return int(conn.execute(_PURGE_AUDIT, {"days": days, "batch": batch}).rowcount)
