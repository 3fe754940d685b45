"""Who is asking: a tenant (or every tenant) and a role. Every operation of the service
layer takes one, checks the role's right first, then scopes what it reads and writes by
the tenant. Nothing above this layer checks either.

::

    viewer     reads runs, dead letters, approvals and pipelines of its tenant
    producer   also submits and cancels runs
    admin      also replays failed runs, approves and rejects held steps, manages the
               service registry and the breakers, and reads its tenant's usage and cost
               and audit trail
    operator   everything, across every tenant, maintenance, the farm's workers and the API
               keys: the CLI's role
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hive.errors import PermissionDenied
from hive.pipelines.bounds import check_tenant


class Role(StrEnum):
    VIEWER = "viewer"
    PRODUCER = "producer"
    ADMIN = "admin"
    OPERATOR = "operator"


class Right(StrEnum):
    """What an operation needs; the value completes "role X may not ..."."""

    READ = "read runs"
    SUBMIT = "submit runs"
    CANCEL = "cancel runs"
    REPLAY = "replay runs"
    MAINTAIN = "run maintenance"
    MANAGE_SERVICES = "manage services"
    INSPECT = "inspect the farm (workers, queues, status)"
    USAGE = "read usage and cost"
    DECIDE = "approve or reject steps"
    BREAKERS = "see and operate the circuit breakers"
    BUDGETS = "set and clear tenants' budgets"
    KEYS = "create, list and revoke API keys"
    AUDIT = "read the audit trail"


_RIGHTS: dict[Role, frozenset[Right]] = {
    Role.VIEWER: frozenset({Right.READ}),
    Role.PRODUCER: frozenset({Right.READ, Right.SUBMIT, Right.CANCEL}),
    Role.ADMIN: frozenset(
        {
            Right.READ,
            Right.SUBMIT,
            Right.CANCEL,
            Right.REPLAY,
            Right.MANAGE_SERVICES,
            Right.USAGE,
            Right.DECIDE,
            Right.BREAKERS,
            Right.AUDIT,
        }
    ),
    Role.OPERATOR: frozenset(Right),
}


@dataclass(frozen=True)
class Caller:
    """A tenant-bound caller with a role, or the operator (``tenant=None``: every tenant).

    Raises:
        InvalidArgument: a tenant no run could be stored under (empty, too long, holding a
            NUL character); also a ValueError.
        ValueError: an operator bound to a tenant, or another role bound to none.
    """

    tenant: str | None
    role: Role

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role(self.role))
        # The rule submit applies to its ``tenant`` argument: a tenant-bound caller's runs
        # are stored under this name.
        check_tenant(self.tenant)
        if (self.role is Role.OPERATOR) != (self.tenant is None):
            raise ValueError(
                "the operator, and only the operator, acts for every tenant "
                f"(got role {self.role.value!r} with tenant {self.tenant!r})"
            )

    @classmethod
    def for_tenant(cls, tenant: str | None, role: Role | str | None = None) -> Caller:
        """The operator when ``tenant`` is None; else that tenant's caller, a producer
        unless ``role`` says otherwise."""
        if tenant is None:
            return cls(None, Role(role) if role else Role.OPERATOR)
        return cls(tenant, Role(role) if role else Role.PRODUCER)

    def require(self, right: Right) -> None:
        """Raises PermissionDenied unless the caller's role carries ``right``."""
        if right not in _RIGHTS[self.role]:
            raise PermissionDenied(self.role.value, right.value)

    def can(self, right: Right) -> bool:
        return right in _RIGHTS[self.role]


OPERATOR = Caller(None, Role.OPERATOR)
