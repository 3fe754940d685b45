"""Who is calling: the request's API key, given as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``, as a :class:`~hive.service.Principal`; and the audit record of each
call that changes something.

Every /v1 route is an :class:`AuthenticatedRoute`: the key is checked before the body is
read, so a caller without a valid key hears 401 and nothing else, whatever it sent; then the
tenant's request rate is spent (429 when it is out). Every
failure is the same 401, whatever was wrong (no key, a malformed one, unknown, wrong,
expired, revoked, or two different keys at once). The key is never logged.

Each well-formed key that fails spends one of the client address's failed authentications
(a key refused unread costs nothing), and a key to be read from PostgreSQL is first let
through by them (429 once the address failed too often: :mod:`hive.service.admission`).
The address is the connection's peer, or, from a proxy of ``HIVE_API_TRUSTED_PROXIES``,
the client its ``X-Forwarded-For`` names; behind a proxy not listed there every client
shares the proxy's. A key that has authenticated in this process before is let through
whatever its address did.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from hive import service
from hive.api.errors import Unprocessable
from hive.api.threads import in_thread
from hive.errors import AuthenticationFailed
from hive.service import Action, Outcome, Principal
from hive.settings import get_settings

# For the OpenAPI document: AuthenticatedRoute reads the same two headers.
bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer hive_...`, or a JWT from the configured issuer",
)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: hive_...` (instead of Bearer)"
)


def _presented(request: Request) -> str | None:
    header_key = request.headers.get("x-api-key")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    bearer_key = credentials.strip() if scheme.lower() == "bearer" else None
    if bearer_key is not None and header_key is not None and bearer_key != header_key:
        raise AuthenticationFailed()
    return bearer_key or header_key


def _authenticate(request: Request) -> Principal:
    settings = get_settings()
    # A connection the server gives no address for: all such share one allowance.
    client = client_address(request) or "unknown"
    who = service.authenticate(settings, _presented(request), client=client)
    request.state.principal = who
    # Admission after authentication: a request without a valid key spends no tenant's rate.
    allowance = service.admit_request(settings, who.caller)
    if allowance is not None:
        # hive.api.middleware.Guard puts them on the answer, whatever it is.
        request.state.rate_headers = allowance.headers()
    return who


class AuthenticatedRoute(APIRoute):
    """A route that authenticates first, then reads its body; a body FastAPI cannot parse
    (not UTF-8, nested past the parser's limit, a number too long) is a 422, not a 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            await in_thread(_authenticate, request)
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code != 400:
                    raise
                problem = ("body", "", "cannot be parsed as JSON (or is nested too deep)")
                raise Unprocessable([problem]) from None

        return authenticated


async def principal(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
    _header_key: str | None = Security(api_key_header),
) -> Principal:
    """The request's principal, as :class:`AuthenticatedRoute` found it (a dependency of
    every /v1 route; its parameters put the two ways of giving a key in the document).
    Async: a plain function would cost every request a hop to the thread pool and back."""
    who = getattr(request.state, "principal", None)
    if isinstance(who, Principal):
        return who
    return await in_thread(_authenticate, request)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit(
    request: Request,
    who: Principal,
    action: Action,
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


@dataclass
class Concerning:
    """Whose thing a change touched, for its audit record: an operator's record is filed
    under that tenant, once the block knows it (a tenant-bound key's under its own)."""

    tenant: str | None = None


@contextmanager
def audited(request: Request, who: Principal, action: Action, target: str) -> Iterator[Concerning]:
    """Record the change the block makes on ``target``: ``ok``, or the outcome its error
    stands for (then the error goes on)."""
    concerning = Concerning()
    try:
        yield concerning
    except Exception as exc:
        audit(request, who, action, target, service.outcome_of(exc), concerning.tenant)
        raise
    audit(request, who, action, target, Outcome.OK, concerning.tenant)
