"""The service layer against real PostgreSQL and Redis: tenant isolation, roles, idempotency.

No worker runs: the runs stay queued, their messages wait in this session's Redis db.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hive import Client, service
from hive.errors import (
    InvalidArgument,
    PermissionDenied,
    ReplayError,
    RunNotFound,
    SettingsError,
    UnknownPipeline,
)
from hive.service import OPERATOR, Caller, Role
from hive.settings import DatabaseSettings, Settings, get_settings
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


@pytest.mark.parametrize("role", [Role.VIEWER, Role.PRODUCER, Role.ADMIN])
def test_only_the_operator_sees_the_farms_workers(settings: Settings, role: Role) -> None:
    with pytest.raises(PermissionDenied, match="may not inspect the farm"):
        service.list_workers(settings, Caller("acme", role))
    with pytest.raises(InvalidArgument, match="'gone' is not a worker state"):
        service.list_workers(settings, service.OPERATOR, state="gone")


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
    again = service.submit(settings, acme, "echo-one", {"text": "1"}, idempotency_key="k")
    other = service.submit(
        settings, Caller("globex", Role.PRODUCER), "echo-one", {"text": "1"}, idempotency_key="k"
    )

    assert first.created and not again.created and other.created
    assert again.run_id == first.run_id != other.run_id
    assert db.scalar("SELECT count(*) FROM runs") == 2


def test_a_key_repeated_with_the_same_request_gives_its_run_and_with_another_is_refused(
    settings: Settings,
) -> None:
    """As Stripe's and the IETF draft's Idempotency-Key: a repeat is the same request, or
    the caller's mistake, never silently another request answered with the first's run."""
    acme = Caller("acme", Role.PRODUCER)
    first = service.submit(settings, acme, "merge-grows",
                           {"text": "t", "extra": {"a": 1.0, "b": [1, "x"]}},
                           idempotency_key="order-9")  # fmt: skip
    # The same JSON value: keys in another order, 1.0 written as 1.
    again = service.submit(settings, acme, "merge-grows",
                           {"extra": {"b": [1, "x"], "a": 1}, "text": "t"},
                           idempotency_key="order-9")  # fmt: skip
    assert not again.created and again.run_id == first.run_id

    with pytest.raises(InvalidArgument) as other_input:
        service.submit(settings, acme, "merge-grows",
                       {"text": "t", "extra": {"a": True, "b": [1, "x"]}},
                       idempotency_key="order-9")  # fmt: skip
    assert other_input.value.problems == [
        f"idempotency_key 'order-9' started run {first.run_id} with another input; "
        "a new request needs a new key"
    ]
    with pytest.raises(InvalidArgument, match=r"started run .* with pipeline 'merge-grows'"):
        service.submit(settings, acme, "echo-one", {"text": "1"}, idempotency_key="order-9")
    assert db.scalar("SELECT count(*) FROM runs") == 1


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


def test_an_operator_cannot_submit_a_run_for_the_empty_tenant(settings: Settings) -> None:
    # No tenant-bound caller could ever see such a run.
    with pytest.raises(InvalidArgument, match="tenant must be a non-empty name"):
        service.submit(settings, OPERATOR, "echo-one", {"text": "x"}, tenant="")
    assert db.scalar("SELECT count(*) FROM runs") == 0


@pytest.mark.parametrize("tenant", ["x" * 300, "a\x00b"], ids=["too-long", "nul"])
def test_a_client_bound_to_a_tenant_no_run_could_be_stored_under_is_refused_at_once(
    settings: Settings, tenant: str
) -> None:
    with pytest.raises(InvalidArgument, match="tenant"):
        Client(settings, tenant=tenant).submit("echo-one", {"text": "x"})
    assert db.scalar("SELECT count(*) FROM runs") == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda s: Client(s).list(limit=-1),
        lambda s: Client(s).list(limit=0),
        lambda s: Client(s).list(status="finished"),
        lambda s: service.list_dead_letters(s, OPERATOR, limit=-1),
        lambda s: service.list_dead_letters(s, OPERATOR, since="yesterday"),
    ],
    ids=["list-negative", "list-zero", "list-status", "dead-letters-negative", "since-text"],
)
def test_listing_arguments_the_database_would_refuse_are_refused_by_name(
    settings: Settings, call: Callable[[Settings], Any]
) -> None:
    with pytest.raises(InvalidArgument, match=r"^(limit|status|since) must be"):
        call(settings)


@pytest.mark.parametrize("run_id", [123, None, 4.5])
def test_a_run_id_that_is_neither_text_nor_a_uuid_is_refused_naming_its_type(
    settings: Settings, run_id: Any
) -> None:
    client = Client(settings)
    for call in (client.get, client.run_row, client.cancel, client.run):
        with pytest.raises(InvalidArgument, match="a run id is a UUID or its text, not"):
            call(run_id)


def test_replaying_every_failed_run_of_an_unknown_pipeline_names_the_known_ones(
    settings: Settings,
) -> None:
    with pytest.raises(
        UnknownPipeline, match=r"unknown pipeline 'nope'; known pipelines: .*echo-one"
    ):
        service.replay_failed_runs(settings, OPERATOR, "nope")
    assert list(service.replay_failed_runs(settings, OPERATOR, "echo-one")) == []


def test_failed_runs_of_a_pipeline_whose_file_is_gone_are_still_replayed(
    settings: Settings,
) -> None:
    orphan = _submit(settings, None)
    _as_failed(orphan)
    db.execute("UPDATE runs SET pipeline = 'retired' WHERE id = :id", id=orphan)

    assert list(service.replay_failed_runs(settings, OPERATOR, "retired")) == [(orphan, ["echo"])]


def test_a_run_has_one_json_shape_whether_read_or_listed(settings: Settings) -> None:
    run_id = _submit(settings, "acme")
    client = Client(settings)

    shown = client.get(run_id).to_json()
    (listed,) = [view.to_json() for view in client.list()]

    assert list(listed) == list(shown)
    assert listed["steps"] is None, "a listing reads no step: null, not an empty list"
    assert [step["step_id"] for step in shown["steps"]] == ["echo"]
    assert {key: value for key, value in listed.items() if key != "steps"} == {
        key: value for key, value in shown.items() if key != "steps"
    }
    assert shown["id"] == str(run_id)


def test_a_dead_letter_report_is_the_run_and_the_dead_letters_as_read_and_listed(
    settings: Settings,
) -> None:
    run_id = _submit(settings, "acme")
    _as_failed(run_id)

    report = service.dead_letter_report(settings, OPERATOR, run_id).to_json()

    assert report == {
        "run": service.get_run(settings, OPERATOR, run_id).to_json(),
        "dead_letters": [
            letter.to_json() for letter in service.list_dead_letters(settings, OPERATOR)
        ],
    }
    assert report["run"]["pipeline_version"] == 1
    assert report["dead_letters"][0]["run_id"] == str(run_id)


def test_settings_naming_another_database_are_refused_before_anything_is_read(
    settings: Settings,
) -> None:
    elsewhere = settings.model_copy(
        update={"database": DatabaseSettings(url="postgresql://postgres@127.0.0.1:1/nowhere")}
    )

    with pytest.raises(SettingsError) as raised:
        Client(elsewhere)
    with pytest.raises(SettingsError):
        service.list_runs(elsewhere, OPERATOR)

    assert raised.value.variable == "HIVE_DATABASE_URL"
    assert "nowhere" not in str(raised.value)


@pytest.mark.parametrize(
    ("section", "update", "variable"),
    [
        ("broker", {"url": "redis://127.0.0.1:1/0"}, "HIVE_BROKER_URL"),
        ("broker", {"key_prefix": "another-farm"}, "HIVE_KEY_PREFIX"),
    ],
)
def test_settings_naming_another_broker_or_key_prefix_are_refused(
    settings: Settings, section: str, update: dict[str, Any], variable: str
) -> None:
    changed = getattr(settings, section).model_copy(update=update)
    elsewhere = settings.model_copy(update={section: changed})

    with pytest.raises(SettingsError) as raised:
        service.submit(elsewhere, OPERATOR, "echo-one", {"text": "x"})

    assert raised.value.variable == variable
    assert db.scalar("SELECT count(*) FROM runs") == 0


def test_settings_that_only_choose_the_pipelines_are_used_as_given(
    settings: Settings, tmp_path: Any
) -> None:
    (tmp_path / "only.yaml").write_text(
        "name: only-here\nversion: 1\ninput_schema: {type: object}\n"
        "steps:\n  - id: a\n    agent: echo\n    input: {text: hi}\n"
    )
    mine = settings.model_copy(
        update={"pipelines": settings.pipelines.model_copy(update={"dir": tmp_path})}
    )

    assert list(Client(mine).pipelines()) == ["only-here"]


@pytest.mark.parametrize(
    ("pipeline", "data", "options"),
    [
        ("parallel", {"text": "a b c"}, {}),
        ("echo-one", {"text": "x", "n": [1, 2.5, {"b": None, "a": True}]},
         {"tenant": "acme", "priority": "high", "budget_usd": 0.1234567891}),
    ],
    ids=["dag", "tenant-priority-budget"],
)  # fmt: skip
def test_a_submits_run_as_stored_is_the_run_read_back_before_a_worker_takes_it(
    settings: Settings, pipeline: str, data: dict[str, Any], options: dict[str, Any]
) -> None:
    """What the API answers a POST with is built, not read back: it must be the read."""
    submitted = service.submit(settings, OPERATOR, pipeline, data, **options)

    assert submitted.as_stored is not None
    built = submitted.as_stored()
    assert built.to_json() == service.get_run(settings, OPERATOR, submitted.run_id).to_json()
    assert built.status == "queued" and built.steps and len(built.steps) > 0


def test_a_run_this_submit_did_not_store_is_not_built_but_read(settings: Settings) -> None:
    first = service.submit(settings, OPERATOR, "echo-one", {"text": "1"}, idempotency_key="k")
    again = service.submit(settings, OPERATOR, "echo-one", {"text": "1"}, idempotency_key="k")

    assert first.as_stored is not None
    assert again.as_stored is None and not again.created


def test_an_api_process_keeps_a_connection_for_each_request_it_answers_at_once(
    settings: Settings,
) -> None:
    """Else each request past the pool's 2 or 5 opens and closes a PostgreSQL connection."""
    from hive.api.app import REQUESTS_AT_ONCE, create_app
    from hive.db.engine import get_engine, size_pools

    try:
        create_app(settings)
        wanted = min(REQUESTS_AT_ONCE, settings.database.pool_max)
        assert get_engine(autocommit=True).pool.size() == wanted  # type: ignore[attr-defined]
        assert get_engine(autocommit=False).pool.size() == wanted  # type: ignore[attr-defined]
    finally:
        size_pools(0)  # this test process's pools as they were
