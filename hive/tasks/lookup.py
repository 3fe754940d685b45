"""``ctx.services`` in the farm: a service name resolved through the registry in PostgreSQL.

The agents layer declares what it needs (:class:`hive.agents.base.ServiceLookup`); the step
task gives each agent one of these, scoped to the run's tenant. The choice itself is
:func:`hive.db.services.pick`, the same one ``Client().services.pick`` makes.
"""

from __future__ import annotations

from collections.abc import Sequence

from hive.db import services as registry
from hive.db.retrying import in_transaction


class RegistryLookup:
    """Picks a passing instance of a service for one run's steps: one of the run's tenant
    or one shared by the farm (registered with no tenant), at random among them.

    Each pick reads the registry afresh, so an instance that beat's health sweep has just
    marked critical is no longer chosen. PostgreSQL out of reach is not waited for inside
    the agent's call: :class:`~hive.errors.ServiceUnavailable` fails the attempt, which is
    retried.
    """

    def __init__(self, tenant: str | None) -> None:
        self._tenant = tenant

    def pick(self, service: str, exclude: Sequence[str] = (), *, shared_only: bool = False) -> str:
        """The address URL of a passing instance of ``service`` not in ``exclude``; with
        ``shared_only`` (the step sends a credential), a shared one: a tenant could
        register an instance of any name, and would then be sent the operator's secret.

        Raises:
            NoPassingInstance: none is left (names the service and counts its instances).
            ServiceUnavailable: PostgreSQL cannot be reached.
        """
        # A run of no tenant sees the shared instances alone: its errors need not say so.
        shared = shared_only and self._tenant is not None
        tenant = None if shared_only else self._tenant
        row = in_transaction(
            lambda conn: registry.pick(
                conn, service, tenant=tenant, for_run=True, exclude=exclude, shared=shared
            ),
            retry_s=0,
        )
        return str(row.url)
