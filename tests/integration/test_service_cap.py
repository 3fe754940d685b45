"""The cap on a tenant's registered service instances (``HIVE_MAX_SERVICE_INSTANCES``) holds
against registrations racing each other: the count and the insert run under a lock of the
tenant's. Heartbeats and re-registrations are never refused. Real PostgreSQL; the racers are
threads, each on its own connection, released together."""

from __future__ import annotations

import pytest

from hive import service
from hive.errors import TooManyServiceInstances
from hive.service import Caller, Role
from hive.settings import HealthSettings, Settings, get_settings
from tests.support import db
from tests.support.racing import released_together

# The autocommit pool's most connections (2 + 10 overflow): every racer holds one at once.
RACERS = 12


def _capped(cap: int) -> Settings:
    return get_settings().model_copy(update={"health": HealthSettings(max_instances=cap)})


def _register(caller: Caller, cap: int, instance_id: str, url: str = "http://h/") -> str:
    return service.register_service(_capped(cap), caller, "svc", url, instance_id=instance_id)


def _race(caller: Caller, cap: int) -> list[str]:
    """Register RACERS new instances at once (:func:`released_together`); each one's id,
    or "refused"."""

    def register(i: int) -> str:
        try:
            return _register(caller, cap, f"racer-{i}")
        except TooManyServiceInstances:
            return "refused"

    return released_together("service_instances", RACERS, register)


def _instances(tenant: str | None) -> int:
    where = "tenant IS NULL" if tenant is None else "tenant = :t"
    return int(db.scalar(f"SELECT count(*) FROM service_instances WHERE {where}", t=tenant))


@pytest.mark.parametrize(
    ("caller", "cap"),
    [(Caller("acme", Role.ADMIN), 3), (service.OPERATOR, 2)],
    ids=["a tenant", "instances of no tenant"],
)
def test_racing_registrations_register_exactly_as_many_instances_as_the_cap_leaves(
    clean_state: None, caller: Caller, cap: int
) -> None:
    _register(caller, cap, "before")

    outcomes = _race(caller, cap)

    assert len([o for o in outcomes if o != "refused"]) == cap - 1
    assert outcomes.count("refused") == RACERS - (cap - 1)
    assert _instances(caller.tenant) == cap


def test_at_the_cap_heartbeats_and_re_registrations_go_through_and_new_ones_do_not(
    clean_state: None,
) -> None:
    acme, globex = Caller("acme", Role.ADMIN), Caller("globex", Role.ADMIN)
    for i in range(2):
        _register(acme, 2, f"acme-{i}")

    with pytest.raises(TooManyServiceInstances) as refused:
        _register(acme, 2, "acme-2")
    assert (refused.value.tenant, refused.value.cap) == ("acme", 2)
    assert "HIVE_MAX_SERVICE_INSTANCES" in str(refused.value)
    # Nothing of the refused one is stored, not even its event.
    assert db.scalar("SELECT count(*) FROM events WHERE detail->>'instance_id' = 'acme-2'") == 0

    # An instance the tenant has is never refused: a heartbeat, or registering it again.
    assert service.heartbeat_service(_capped(2), acme, "acme-0").id == "acme-0"
    assert _register(acme, 2, "acme-1", url="http://moved/") == "acme-1"
    # Another tenant has a cap of its own; 0 is no cap.
    assert _register(globex, 2, "globex-0") == "globex-0"
    assert _register(acme, 0, "acme-uncapped") == "acme-uncapped"
    # Deregistering makes room.
    service.deregister_service(_capped(3), acme, "acme-uncapped")
    assert _register(acme, 3, "acme-2") == "acme-2"
    assert _instances("acme") == 3
