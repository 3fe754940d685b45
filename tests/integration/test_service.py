"""The service layer against real PostgreSQL and Redis: tenant isolation, roles, idempotency.

No worker runs: the runs stay queued, their messages wait in this session's Redis db.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hive import Client, service
from hive.errors import PermissionDenied, ReplayError, RunNotFound
from hive.service import OPERATOR, Caller, Role
from hive.settings import Settings, get_settings
from tests.support import db

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(hive_env: dict[str, str], clean_state: None) -> Settings:
    return get_settings()


def _submit(settings: Settings, tenant: str | None, text: str = "x") -> uuid.UUID:
    return service.submit(settings, OPERATOR, "echo-one", {"text": text}, tenant=tenant).run_id


def _as_failed(run_id: uuid.UUID) -> None:
    """What a step failing for good leaves: the step failed, a dead letter, the run failed."""
    db.execute(
        "UPDATE step_runs SET status = 'failed', enqueued_at = NULL WHERE run_id = :id", id=run_id
    )
    db.execute(
        "UPDATE runs SET status = 'failed', steps_remaining = 0, finished_at = now(),"
        ' error = \'{"type": "boom", "message": "x", "step_id": "echo"}\' '
        "WHERE id = :id",
        id=run_id,
    )
    db.execute(
        "INSERT INTO dead_letters (run_id, step_id, pipeline, agent, attempts, error, input)"
        " VALUES (:id, 'echo', 'echo-one', 'echo', 1, '{\"type\": \"boom\"}', '{}')",
        id=run_id,
    )


ACME = [Caller("acme", role) for role in (Role.VIEWER, Role.PRODUCER, Role.ADMIN)]

# Every operation a tenant-bound caller may attempt on one run, by the right it needs.
RUN_OPERATIONS: dict[str, tuple[Role, Callable[[Settings, Caller, uuid.UUID], Any]]] = {
    "get": (Role.VIEWER, service.get_run),
    "state": (Role.VIEWER, service.get_run_state),
    "wait": (Role.VIEWER, lambda s, c, r: service.wait_for_run(s, c, r, timeout=0.1)),
    "dead letters": (Role.VIEWER, service.dead_letter_report),
    "cancel": (Role.PRODUCER, service.cancel_run),
    "replay": (Role.ADMIN, service.replay_run),
}


@pytest.mark.parametrize("owner", ["globex", None], ids=["other-tenant", "no-tenant"])
@pytest.mark.parametrize("operation", list(RUN_OPERATIONS))
def test_a_tenant_bound_caller_gets_run_not_found_for_a_run_that_is_not_its_tenants(
    settings: Settings, operation: str, owner: str | None
) -> None:
    role, call = RUN_OPERATIONS[operation]
    foreign = _submit(settings, owner)
    _as_failed(foreign)  # replayable, so only the tenant can stop the replay
    missing = uuid.uuid4()

    with pytest.raises(RunNotFound) as foreign_error:
        call(settings, Caller("acme", role), foreign)
    with pytest.raises(RunNotFound) as missing_error:
        call(settings, Caller("acme", role), missing)

    # Word for word what a run that does not exist gives: no existence oracle.
    assert str(foreign_error.value) == str(missing_error.value).replace(str(missing), str(foreign))
    status = db.scalar("SELECT status FROM runs WHERE id = :id", id=foreign)
    assert status == "failed", "the foreign run must be left as it was"
    assert db.scalar("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL") == 1


def test_a_tenant_bound_caller_lists_only_its_tenants_runs_and_dead_letters(
    settings: Settings,
) -> None:
    mine = [_submit(settings, "acme", f"a{i}") for i in range(3)]
    theirs = [_submit(settings, "globex"), _submit(settings, None)]
    for run_id in [mine[0], *theirs]:
        _as_failed(run_id)

    for caller in ACME:
        assert {uuid.UUID(v.id) for v in service.list_runs(settings, caller)} == set(mine)
        assert {v.tenant for v in service.list_runs(settings, caller, status="failed")} == {"acme"}
        letters = service.list_dead_letters(settings, caller)
        assert [letter.run_id for letter in letters] == [mine[0]]
    everyone = {uuid.UUID(v.id) for v in service.list_runs(settings, OPERATOR, limit=100)}
    assert everyone == {*mine, *theirs}
    assert len(service.list_dead_letters(settings, OPERATOR)) == 3


def test_replaying_every_failed_run_of_a_pipeline_replays_the_callers_tenants_alone(
    settings: Settings,
) -> None:
    mine, theirs = _submit(settings, "acme"), _submit(settings, "globex")
    _as_failed(mine)
    _as_failed(theirs)

    replayed = list(service.replay_failed_runs(settings, Caller("acme", Role.ADMIN), "echo-one"))

    assert replayed == [(mine, ["echo"])]
    assert db.scalar("SELECT status FROM runs WHERE id = :id", id=mine) == "running"
    assert db.scalar("SELECT status FROM runs WHERE id = :id", id=theirs) == "failed"


def test_a_tenant_bound_caller_can_act_on_its_own_runs(settings: Settings) -> None:
    producer = Caller("acme", Role.PRODUCER)
    submitted = service.submit(settings, producer, "echo-one", {"text": "mine"})
    failed = service.submit(settings, producer, "echo-one", {"text": "mine"}).run_id
    _as_failed(failed)

    assert db.scalar("SELECT tenant FROM runs WHERE id = :id", id=submitted.run_id) == "acme"
    assert service.get_run(settings, Caller("acme", Role.VIEWER), submitted.run_id).tenant == "acme"
    assert service.cancel_run(settings, producer, submitted.run_id) is True
    assert service.replay_run(settings, Caller("acme", Role.ADMIN), failed) == ["echo"]
    with pytest.raises(ReplayError, match="not a failed run"):
        service.replay_run(settings, Caller("acme", Role.ADMIN), submitted.run_id)


@pytest.mark.parametrize("operation", list(RUN_OPERATIONS))
def test_a_role_without_the_right_is_denied_before_the_run_is_looked_up(
    settings: Settings, operation: str
) -> None:
    needed, call = RUN_OPERATIONS[operation]
    own = _submit(settings, "acme")
    ranks = [Role.VIEWER, Role.PRODUCER, Role.ADMIN]
    for role in ranks[: ranks.index(needed)]:
        # The same answer whether the run exists or not: the role alone decides.
        for run_id in (own, uuid.uuid4()):
            with pytest.raises(PermissionDenied, match=f"role '{role}' may not"):
                call(settings, Caller("acme", role), run_id)
    assert db.scalar("SELECT status FROM runs WHERE id = :id", id=own) == "queued"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.PRODUCER, Role.ADMIN])
def test_only_the_operator_runs_maintenance(settings: Settings, role: Role) -> None:
    caller = Caller("acme", role)
    for operation in (service.recover, service.purge, service.upgrade_schema):
        with pytest.raises(PermissionDenied, match="may not run maintenance"):
            operation(settings, caller)


def test_a_viewer_reads_but_cannot_submit(settings: Settings) -> None:
    viewer = Caller("acme", Role.VIEWER)

    assert "echo-one" in service.list_pipelines(settings, viewer)
    with pytest.raises(PermissionDenied, match="role 'viewer' may not submit runs"):
        service.submit(settings, viewer, "echo-one", {"text": "x"})
    assert db.scalar("SELECT count(*) FROM runs") == 0


def test_a_tenant_bound_caller_cannot_submit_for_another_tenant(settings: Settings) -> None:
    with pytest.raises(PermissionDenied, match="submit runs for tenant 'globex'"):
        service.submit(
            settings, Caller("acme", Role.ADMIN), "echo-one", {"text": "x"}, tenant="globex"
        )
    assert db.scalar("SELECT count(*) FROM runs") == 0


@pytest.mark.parametrize(
    ("tenant", "role"),
    [(None, Role.VIEWER), (None, Role.ADMIN), ("acme", Role.OPERATOR), ("", Role.VIEWER)],
)
def test_only_the_operator_acts_for_every_tenant(tenant: str | None, role: Role) -> None:
    with pytest.raises(ValueError, match="tenant"):
        Caller(tenant, role)


def test_submit_with_one_key_gives_back_the_first_run_per_tenant(settings: Settings) -> None:
    acme = Caller("acme", Role.PRODUCER)

    first = service.submit(settings, acme, "echo-one", {"text": "1"}, idempotency_key="k")
    again = service.submit(settings, acme, "echo-one", {"text": "2"}, idempotency_key="k")
    other = service.submit(
        settings, Caller("globex", Role.PRODUCER), "echo-one", {"text": "1"}, idempotency_key="k"
    )

    assert first.created and not again.created and other.created
    assert again.run_id == first.run_id != other.run_id
    assert db.scalar("SELECT count(*) FROM runs") == 2


def test_a_client_bound_to_a_tenant_sees_its_runs_alone(settings: Settings) -> None:
    acme = Client(tenant="acme")
    mine = acme.submit("echo-one", {"text": "mine"})
    theirs = Client(tenant="globex").submit("echo-one", {"text": "theirs"})

    assert acme.get(mine.id).tenant == "acme"
    assert [v.id for v in acme.list()] == [str(mine.id)]
    with pytest.raises(RunNotFound):
        acme.get(theirs.id)
    with pytest.raises(RunNotFound):
        acme.cancel(theirs.id)
    with pytest.raises(RunNotFound):
        acme.run(theirs.id).status()
    assert Client(tenant="acme", role="viewer").get(mine.id).status == "queued"
    assert {v.id for v in Client().list()} == {str(mine.id), str(theirs.id)}
