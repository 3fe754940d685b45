"""API keys of the HTTP API: create (the key is shown once), list, revoke, authenticate.

A key reads ``hive_<id>_<secret>``: 16 hex digits of id, by which it is looked up, and 256
random bits of secret. Only a hash of the whole key is stored, HMAC-SHA256 with the server's
``HIVE_API_KEY_PEPPER``, or plain SHA-256 without one. A fast hash is the right one here:
slow hashes (bcrypt, argon2) exist to make guessing a *password* from its hash expensive,
and nobody guesses 256 random bits, so they would only add milliseconds to every request.
The pepper keeps a copied ``api_keys`` table useless without the server's secret. Hashes
are compared in constant time.

Creating and revoking are the operator's (``Right.KEYS``); both are recorded in the audit
trail, in the same transaction as the change.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hive.db import api_keys as key_store
from hive.db.retrying import Connection, in_autocommit, in_transaction
from hive.errors import ApiKeyNotFound, AuthenticationFailed, InvalidArgument
from hive.service.admission import admit_authentication, failed_authentication
from hive.service.audit import Action, Outcome, record
from hive.service.caller import Caller, Right, Role
from hive.service.farm import operation
from hive.service.revocations import RevocationFollower, announce_revocation
from hive.service.tokens import looks_like_token, token_caller
from hive.settings import Settings

_KEY = re.compile(r"hive_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
# The hash a missing key is compared with, so a lookup that finds nothing costs what one
# that finds a key does.
_NO_HASH = "0" * 64
_NAME_MAX = 200
# The longest a key may be made to last (`hive keys create --expires` holds the same).
EXPIRES_MAX_S = 100 * 365 * 86400.0

# How long a process trusts a key record it read (``authenticate``) is
# ``HIVE_API_KEY_CACHE_S``: it saves every request a PostgreSQL round trip. A key revoked
# in this process is dropped at once; one revoked elsewhere too, in an API process that
# follows revocations (:mod:`hive.service.revocations`), else within that many seconds.
_cache: dict[str, _Kept] = {}
_cache_lock = threading.Lock()
# How many times a record was forgotten (a revocation heard, the follower subscribed): a
# record read from PostgreSQL is kept only if none was while it was read, since the read
# may have begun before a revocation whose message came, dropping nothing, before the
# record was kept. Only a read pays for this, never a kept record's check.
_forgets = 0
# Key ids found to be no active key (none, revoked, expired), and when, for the same: a
# client repeating a stale key costs one lookup per process in that time. Safe to keep:
# a new key's id is random, never one presented before it existed. Bounded, oldest out.
_unknown: dict[str, float] = {}
_UNKNOWN_MAX = 10_000


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class _Kept:
    """A key's record as this process read it, and whether a use of it was recorded since."""

    row: key_store.KeyRow
    read_at: float
    use_recorded: bool = False


@dataclass(frozen=True)
class ApiKeyView:
    """A key as listed: never the key, nor its hash."""

    id: str
    tenant: str | None
    role: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    status: str
    """``active``, ``expired`` or ``revoked``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "role": self.role,
            "name": self.name,
            "status": self.status,
            "created_at": _ts(self.created_at),
            "expires_at": _ts(self.expires_at),
            "revoked_at": _ts(self.revoked_at),
            "last_used_at": _ts(self.last_used_at),
        }


@dataclass(frozen=True)
class NewApiKey:
    """A key just made: ``key`` is the only time it is ever shown."""

    key: str
    view: ApiKeyView

    def __repr__(self) -> str:  # never the key
        return f"<NewApiKey {self.view.id}>"


@dataclass(frozen=True)
class Principal:
    """Who an authenticated request comes from: its key's id and the caller it acts as."""

    key_id: str
    caller: Caller


def _view(row: key_store.KeyRow) -> ApiKeyView:
    status = "revoked" if row.revoked_at else "expired" if row.expired else "active"
    return ApiKeyView(
        id=row.id, tenant=row.tenant, role=row.role, name=row.name, created_at=row.created_at,
        expires_at=row.expires_at, revoked_at=row.revoked_at, last_used_at=row.last_used_at,
        status=status,
    )  # fmt: skip


def key_hash(settings: Settings, key: str) -> str:
    """The stored form of ``key``: HMAC-SHA256 with the pepper, or SHA-256 without one."""
    data = key.encode("utf-8", errors="surrogatepass")
    pepper = settings.api.key_pepper
    if pepper is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(pepper.get_secret_value().encode(), data, hashlib.sha256).hexdigest()


@operation
def create_api_key(
    settings: Settings,
    caller: Caller,
    *,
    tenant: str | None,
    role: Role | str,
    name: str | None = None,
    expires_in_s: float | None = None,
) -> NewApiKey:
    """Make a key for ``tenant`` with ``role`` (``tenant`` None: an operator key, across
    every tenant, whose role must be ``operator``).

    Raises:
        PermissionDenied: the caller is not the operator.
        InvalidArgument: a role that does not go with the tenant, a tenant or name no key
            could be stored under, or an expiry that is not a positive number of seconds.
    """
    caller.require(Right.KEYS)
    problems: list[str] = []
    try:
        key_caller = Caller(tenant, Role(role))
    except InvalidArgument as exc:
        problems += exc.problems
    except ValueError as exc:
        problems.append(str(exc))
    label = name if name is not None else ""
    if not isinstance(label, str) or len(label) > _NAME_MAX or "\x00" in label:
        problems.append(f"name must be text of at most {_NAME_MAX} characters, without NUL")
    if expires_in_s is not None and not (
        isinstance(expires_in_s, int | float) and 0 < expires_in_s <= EXPIRES_MAX_S
    ):
        problems.append(
            f"expires_in_s must be a positive number of seconds, at most {EXPIRES_MAX_S:g} "
            "(100 years)"
        )
    if problems:
        raise InvalidArgument(problems)
    key_id = secrets.token_hex(8)
    key = f"hive_{key_id}_{secrets.token_urlsafe(32)}"
    forget_key(key_id)

    def store(conn: Connection) -> key_store.KeyRow:
        row = key_store.insert_key(
            conn, key_id=key_id, tenant=key_caller.tenant, role=key_caller.role.value,
            name=label, key_hash=key_hash(settings, key), expires_in_s=expires_in_s,
        )  # fmt: skip
        record(conn, None, caller, Action.KEY_CREATE, f"key:{key_id}", Outcome.OK, None, tenant)
        return row

    return NewApiKey(key, _view(in_transaction(store, retry_s=0)))


@operation
def list_api_keys(settings: Settings, caller: Caller) -> list[ApiKeyView]:
    """Every key, oldest first, revoked and expired ones included (never a key or hash)."""
    caller.require(Right.KEYS)
    rows = in_transaction(lambda conn: key_store.list_keys(conn, tenant=caller.tenant), retry_s=0)
    return [_view(row) for row in rows]


@operation
def revoke_api_key(settings: Settings, caller: Caller, key_id: str) -> ApiKeyView:
    """Revoke a key: from now on it authenticates nothing. Revoking it again is no error
    and keeps the first time. Every API process is told at once (its cached record is
    dropped); one that cannot hear it refuses the key within ``HIVE_API_KEY_CACHE_S``.

    Raises:
        ApiKeyNotFound: no key with that id.
    """
    caller.require(Right.KEYS)
    if not isinstance(key_id, str) or not re.fullmatch(r"[0-9a-f]{16}", key_id):
        raise ApiKeyNotFound(str(key_id))

    def revoke(conn: Connection) -> key_store.KeyRow | None:
        row = key_store.revoke_key(conn, key_id, tenant=caller.tenant)
        if row is not None:
            record(
                conn, None, caller, Action.KEY_REVOKE, f"key:{key_id}", Outcome.OK, None, row.tenant
            )
        return row

    row = in_transaction(revoke, retry_s=0)
    forget_key(key_id)
    if row is None:
        raise ApiKeyNotFound(key_id)
    announce_revocation(settings, key_id)
    return _view(row)


def follow_key_revocations(settings: Settings) -> RevocationFollower:
    """Drop this process's record of each key as it is revoked anywhere, until the follower
    returned is stopped: what an API process does while it serves."""
    follower = RevocationFollower(settings, forget_key)
    follower.start()
    return follower


def forget_key(key_id: str | None = None) -> None:
    """Drop what this process read of ``key_id`` (of every key: None), and what it is reading
    of any key."""
    global _forgets
    with _cache_lock:
        _forgets += 1
        if key_id is None:
            _cache.clear()
            _unknown.clear()
        else:
            _cache.pop(key_id, None)
            _unknown.pop(key_id, None)


def _not_a_key(key_id: str, now: float) -> None:
    with _cache_lock:
        _cache.pop(key_id, None)
        _unknown.pop(key_id, None)
        if len(_unknown) >= _UNKNOWN_MAX:
            del _unknown[next(iter(_unknown))]
        _unknown[key_id] = now


def _key_row(
    settings: Settings, key_id: str, offered: str, client: str | None
) -> key_store.KeyRow | None:
    """The key's record: as read less than ``HIVE_API_KEY_CACHE_S`` ago, else from PostgreSQL,
    if ``client`` may have a key looked up (:func:`~.admission.admit_authentication`)."""
    now = time.monotonic()
    keep_s = settings.api.key_cache_s
    with _cache_lock:
        cached = _cache.get(key_id)
        unknown_at = _unknown.get(key_id)
        forgets = _forgets
    if cached is not None and now - cached.read_at < keep_s:
        kept = cached.row
        # Its expiry may have passed since it was read (by this clock, not PostgreSQL's:
        # a skew lasts no longer than the record is kept).
        return kept if kept.expires_at is None or datetime.now(UTC) < kept.expires_at else None
    # The very key that authenticated here before is read again whatever its address did:
    # a client sharing an address (a proxy, a NAT) with a flood keeps working.
    known = cached is not None and hmac.compare_digest(cached.row.hash, offered)
    if client is not None and not known:
        admit_authentication(settings, client)
    if unknown_at is not None and now - unknown_at < keep_s:
        return None
    row = in_autocommit(lambda conn: key_store.find_key(conn, key_id), retry_s=0)
    if row is None or row.revoked_at is not None or row.expired:
        _not_a_key(key_id, now)
        return None
    with _cache_lock:
        # Forgotten while read: it answers this request, read as it was before the
        # revocation (if that is what was heard), but the next reads it again.
        if _forgets == forgets:
            _cache[key_id] = _Kept(row, now)
    return row


def _record_use(key_id: str, row: key_store.KeyRow) -> None:
    """Record a use of the key whose secret was just checked: at most once a minute, and
    once for each reading of its record."""
    if row.used_lately:
        return
    with _cache_lock:
        kept = _cache.get(key_id)
        if kept is None or kept.row is not row or kept.use_recorded:
            return
        kept.use_recorded = True
    in_autocommit(lambda conn: key_store.touch_key(conn, key_id), retry_s=0)


@operation
def authenticate(
    settings: Settings, presented: str | None, *, client: str | None = None
) -> Principal:
    """The principal of a request's key, or of a JWT from the configured issuer
    (:mod:`hive.service.tokens`). A well-formed key that fails spends one of ``client``'s
    failed authentications (an address; None: an in-process caller, never held back).

    Raises:
        AuthenticationFailed: no key, or one that is malformed, unknown, wrong, expired or
            revoked; which one is never said.
        TooManyRequests: the key would be looked up, and ``client`` has failed too often.
    """
    if isinstance(presented, str) and looks_like_token(presented):
        key_id, caller = token_caller(settings.api, presented)
        return Principal(key_id, caller)
    match = _KEY.fullmatch(presented) if isinstance(presented, str) else None
    if match is None:
        raise AuthenticationFailed()
    key_id = match.group(1)
    offered = key_hash(settings, presented or "")
    row = _key_row(settings, key_id, offered, client)
    matches = hmac.compare_digest(offered, row.hash if row is not None else _NO_HASH)
    if row is None or not matches:
        # Only a key that was worth reading: what is refused unread costs nothing to refuse.
        if client is not None:
            failed_authentication(settings, client)
        raise AuthenticationFailed()
    # Only now: a guess at the secret is no use of the key.
    _record_use(key_id, row)
    return Principal(key_id, Caller(row.tenant, Role(row.role)))
