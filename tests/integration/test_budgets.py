"""Budget reservations against real PostgreSQL: a compare-and-set that threads on their own
connections race for, settling with its warning, and the release of what attempts left."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hive import Client
from hive.db import budgets
from hive.db.retrying import in_transaction
from hive.errors import BudgetExceeded, InvalidArgument, PermissionDenied
from hive.guard.budgets import release_orphaned_holds
from tests.support import db

pytestmark = pytest.mark.timeout(120)


def _race(contenders: int, reserve: Callable[[int], Any]) -> tuple[list[Any], list[BudgetExceeded]]:
    """Run ``reserve(i)`` in ``contenders`` threads released at once, each on its own
    connection; what each won and each refusal."""
    barrier = threading.Barrier(contenders)
    won: list[Any] = []
    refused: list[BudgetExceeded] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def contend(i: int) -> None:
        barrier.wait()
        try:
            hold = reserve(i)
        except BudgetExceeded as exc:
            with lock:
                refused.append(exc)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                won.append(hold)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return won, refused


def _reserve(run_id: uuid.UUID, step_id: str, amount: float) -> budgets.Hold | None:
    return in_transaction(lambda c: budgets.reserve(c, run_id, step_id, 1, amount), retry_s=0)


def test_two_connections_racing_for_the_last_dollar_one_wins(clean_state: None) -> None:
    for _ in range(10):
        run = Client().submit("echo-one", {"text": "x"}, budget_usd=1.0)
        won, refused = _race(2, lambda i, r=run.id: _reserve(r, f"s{i}", 0.6))  # type: ignore[misc]

        assert len(won) == 1 and len(refused) == 1
        (exc,) = refused
        assert (exc.scope, exc.limit_usd, exc.spent_usd) == ("run", 1.0, 0.0)
        assert (exc.reserved_usd, exc.estimate_usd) == (0.6, 0.6)
        assert exc.excess_usd == pytest.approx(0.2)
        row = db.rows("SELECT budget_reserved_usd FROM runs WHERE id = :id", id=str(run.id))[0]
        assert float(row.budget_reserved_usd) == 0.6


def test_many_connections_reserve_exactly_what_the_budget_holds(clean_state: None) -> None:
    run = Client().submit("echo-one", {"text": "x"}, budget_usd=1.0)

    won, refused = _race(10, lambda i: _reserve(run.id, f"s{i}", 0.3))

    assert (len(won), len(refused)) == (3, 7)
    holds = db.rows("SELECT amount_usd FROM budget_holds WHERE run_id = :id", id=str(run.id))
    assert sorted(float(h.amount_usd) for h in holds) == [0.3, 0.3, 0.3]


def test_two_runs_of_a_tenant_race_for_its_last_daily_dollar(clean_state: None) -> None:
    Client().budgets.set("acme", 1.0)
    runs = [Client().submit("echo-one", {"text": "x"}, tenant="acme") for _ in range(2)]

    won, refused = _race(2, lambda i: _reserve(runs[i].id, "echo", 0.6))

    assert len(won) == 1 and len(refused) == 1
    assert (refused[0].scope, refused[0].tenant) == ("tenant_daily", "acme")
    (view,) = Client().budgets.list()
    assert (view.tenant, view.daily_usd, view.reserved_usd, view.spent_usd) == (
        "acme", 1.0, 0.6, 0.0,
    )  # fmt: skip
    assert view.remaining_usd == pytest.approx(0.4)


def test_a_refusal_by_the_tenant_leaves_the_runs_budget_untouched(clean_state: None) -> None:
    Client().budgets.set("acme", 0.5)
    run = Client().submit("echo-one", {"text": "x"}, tenant="acme", budget_usd=10.0)

    with pytest.raises(BudgetExceeded) as raised:
        _reserve(run.id, "echo", 0.6)

    assert raised.value.scope == "tenant_daily"
    row = db.rows("SELECT budget_reserved_usd FROM runs WHERE id = :id", id=str(run.id))[0]
    assert float(row.budget_reserved_usd) == 0
    assert db.scalar("SELECT count(*) FROM budget_holds") == 0


def test_settling_moves_the_hold_to_spent_and_warns_once_at_80_percent(
    clean_state: None,
) -> None:
    run = Client().submit("echo-one", {"text": "x"}, budget_usd=1.0)
    _reserve(run.id, "a", 0.5)
    _reserve(run.id, "b", 0.3)

    first = in_transaction(lambda c: budgets.settle(c, run.id, "a", 1, 0.7, warn_at=0.8))
    second = in_transaction(lambda c: budgets.settle(c, run.id, "b", 1, 0.2, warn_at=0.8))
    again = in_transaction(lambda c: budgets.settle(c, run.id, "b", 1, 0.2, warn_at=0.8))

    assert first == []
    assert [(w.scope, w.limit_usd, w.spent_usd) for w in second or []] == [("run", 1.0, 0.9)]
    assert again is None  # settled already: nothing held
    row = db.rows(
        "SELECT budget_spent_usd, budget_reserved_usd FROM runs WHERE id = :id", id=str(run.id)
    )[0]
    assert (float(row.budget_spent_usd), float(row.budget_reserved_usd)) == (0.9, 0.0)
    kinds = [r.kind for r in db.rows("SELECT kind FROM events WHERE run_id = :id ORDER BY id",
                                     id=str(run.id))]  # fmt: skip
    assert kinds == ["budget_reserved", "budget_reserved", "budget_settled", "budget_settled",
                     "budget_warning"]  # fmt: skip


def test_recovery_releases_a_hold_whose_attempt_ended_without_settling(
    clean_state: None,
) -> None:
    run = Client().submit("echo-one", {"text": "x"}, budget_usd=1.0)
    _reserve(run.id, "echo", 0.6)
    # The step is not running this attempt (its worker died before it claimed... or after
    # it ended) and the hold is older than the step's timeout and the lease's grace.
    db.execute("UPDATE budget_holds SET created_at = now() - interval '1 hour'")

    assert release_orphaned_holds() == 1

    assert db.scalar("SELECT count(*) FROM budget_holds") == 0
    row = db.rows("SELECT budget_reserved_usd FROM runs WHERE id = :id", id=str(run.id))[0]
    assert float(row.budget_reserved_usd) == 0
    detail = db.scalar("SELECT detail FROM events WHERE kind = 'budget_settled'")
    assert (detail["by"], detail["cost_usd"]) == ("recovery", 0.0)


def test_a_hold_younger_than_its_steps_timeout_is_left_alone(clean_state: None) -> None:
    run = Client().submit("echo-one", {"text": "x"}, budget_usd=1.0)
    _reserve(run.id, "echo", 0.6)

    assert release_orphaned_holds() == 0


def test_budgets_are_set_by_the_operator_and_read_by_the_tenants_admin(
    clean_state: None,
) -> None:
    operator = Client()
    operator.budgets.set("acme", 2.5)
    operator.budgets.set("globex", 1.0)

    admin = Client(tenant="acme", role="admin")
    assert [v.tenant for v in admin.budgets.list()] == ["acme"]
    assert admin.budgets.get("globex").daily_usd is None  # another tenant's: nothing
    with pytest.raises(PermissionDenied):
        admin.budgets.set("acme", 100.0)
    with pytest.raises(PermissionDenied):
        Client(tenant="acme").budgets.list()
    with pytest.raises(InvalidArgument, match="daily_usd must be a positive amount"):
        operator.budgets.set("acme", -1.0)
    assert operator.budgets.clear("globex") is True
    assert operator.budgets.clear("globex") is False
    assert [v.tenant for v in operator.budgets.list()] == ["acme"]
    kinds = [r.kind for r in db.rows("SELECT kind FROM events ORDER BY id")]
    assert kinds == ["budget_set", "budget_set", "budget_cleared"]


def test_a_submit_refuses_a_budget_that_is_no_amount(clean_state: None) -> None:
    with pytest.raises(InvalidArgument, match="budget_usd must be a positive amount"):
        Client().submit("echo-one", {"text": "x"}, budget_usd=0)
    with pytest.raises(InvalidArgument, match="budget_usd must be a number"):
        Client().submit("echo-one", {"text": "x"}, budget_usd="5")  # type: ignore[arg-type]


def test_retention_purges_a_tenants_spending_of_days_long_past(clean_state: None) -> None:
    from hive.db import sweeps

    Client().budgets.set("acme", 1.0)
    db.execute(
        "INSERT INTO tenant_budget_days (tenant, day, spent_usd) VALUES"
        " ('acme', (now() AT TIME ZONE 'UTC')::date, 0.5),"
        " ('acme', (now() AT TIME ZONE 'UTC')::date - 40, 0.9)"
    )

    purged = in_transaction(lambda c: sweeps.purge_registry(c, 30))

    assert purged["budget_days"] == 1
    (today,) = Client().budgets.list()
    assert (today.daily_usd, today.spent_usd) == (1.0, 0.5)
