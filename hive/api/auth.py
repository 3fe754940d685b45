"""Who is calling: the request's API key, given as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``, as a :class:`~hive.service.Principal`; and the audit record of each
call that changes something.

Every failure is the same 401, whatever was wrong (no key, a malformed one, unknown,
wrong, expired, revoked, or two different keys at once). The key is never logged.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from hive import service
from hive.errors import AuthenticationFailed
from hive.service import Outcome, Principal
from hive.settings import get_settings

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer hive_...`")
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: hive_...` (instead of Bearer)"
)


def principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
    header_key: str | None = Security(api_key_header),
) -> Principal:
    """The request's principal (a dependency of every /v1 route).

    Raises:
        AuthenticationFailed: answered 401.
    """
    bearer_key = credentials.credentials if credentials is not None else None
    if bearer_key is not None and header_key is not None and bearer_key != header_key:
        raise AuthenticationFailed()
    who = service.authenticate(get_settings(), bearer_key or header_key)
    request.state.principal = who
    return who


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit(
    request: Request,
    who: Principal,
    action: str,
    target: str | None,
    outcome: Outcome,
    tenant: str | None = None,
) -> None:
    """Record a call that changed (or tried to change) something: never the key, its id."""
    service.record_audit(
        get_settings(),
        who.caller,
        key_id=who.key_id,
        action=action,
        target=target,
        outcome=outcome,
        client=client_address(request),
        tenant=tenant,
    )
