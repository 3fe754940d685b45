"""What a budget costs a step: the reservation and the settle (hive/db/budgets.py).

    python -m bench.budgets [--steps 2000] [--connections 4]

In a database of its own (``hive_bench_budgets``, dropped and made again, migrated), times
through Hive's own ``in_transaction`` what the step task does around an LLM step: the
reservation for a run held to no budget (one read), and the reservation plus the settle
for a run held to its own budget and its tenant's daily one (two transactions, five
statements and two events). Then ``--connections`` threads reserve and settle at once
against one tenant's day row, the contended case, and the budget is checked never to
have been passed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from decimal import Decimal

import psycopg2
from psycopg2 import sql

from bench.setup import PG_ADMIN_URL, load_average

DATABASE = "hive_bench_budgets"
_INSERT = """
    INSERT INTO runs (id, pipeline, pipeline_version, tenant, priority, input, output_spec,
                      status, steps_remaining, budget_usd)
    VALUES (%s, 'bench', 1, %s, 'normal', '{}', '{}', 'running', 1, %s)
"""


def _fresh_database() -> str:
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"


def _run(
    admin: psycopg2.extensions.connection, tenant: str | None, budget: float | None
) -> uuid.UUID:
    run_id = uuid.uuid4()
    with admin.cursor() as cur:
        cur.execute(_INSERT, (str(run_id), tenant, budget))
    return run_id


def _step(run_id: uuid.UUID, step: int, estimate: float, cost: float) -> float:
    """Reserve and settle one step; seconds."""
    from hive.db import budgets
    from hive.db.retrying import in_transaction

    began = time.perf_counter()
    hold = in_transaction(lambda c: budgets.reserve(c, run_id, f"s{step}", 1, estimate))
    if hold is not None:
        in_transaction(lambda c: budgets.settle(c, run_id, f"s{step}", 1, cost, warn_at=0.8))
    return time.perf_counter() - began


def _median_us(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.budgets", description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()

    url = _fresh_database()
    hive_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    os.environ["HIVE_DATABASE_URL"] = hive_url
    from hive.db.migrate import upgrade

    upgrade(hive_url)
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "INSERT INTO tenant_budgets (tenant, daily_usd) VALUES ('acme', 1e6), ('globex', 0.3)"
        )
    load_before = load_average()

    unbudgeted = _run(admin, None, None)
    budgeted = _run(admin, "acme", 1e6)
    for i in range(200):  # warm-up: connections, plans
        _step(unbudgeted, i, 0.002, 0.001)
        _step(budgeted, i, 0.002, 0.001)
    none = [_step(unbudgeted, i, 0.002, 0.001) for i in range(args.steps)]
    both = [_step(budgeted, 1000 + i, 0.002, 0.001) for i in range(args.steps)]

    # Contended: every thread reserves against the same tenant's day row, 0.3 USD, which
    # holds 750 of 1,000 steps' 0.0004 USD.
    runs = [_run(admin, "globex", None) for _ in range(args.connections)]
    per_thread = args.steps // args.connections
    refused = [0]
    lock = threading.Lock()

    def contend(run_id: uuid.UUID) -> None:
        from hive.errors import BudgetExceeded

        for i in range(per_thread):
            try:
                _step(run_id, i, 0.0004, 0.0004)
            except BudgetExceeded:
                with lock:
                    refused[0] += 1

    threads = [threading.Thread(target=contend, args=(r,)) for r in runs]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contended_s = time.perf_counter() - began
    with admin.cursor() as cur:
        cur.execute(
            "SELECT spent_usd, reserved_usd FROM tenant_budget_days WHERE tenant = 'globex'"
        )
        spent, reserved = cur.fetchone()
    admin.close()
    total = per_thread * args.connections
    print(
        json.dumps(
            {
                "steps": args.steps,
                "reserve_no_budget_median_us": _median_us(none),
                "reserve_and_settle_run_and_tenant_median_us": _median_us(both),
                "contended_connections": args.connections,
                "contended_steps_per_s": round(total / contended_s, 1),
                "contended_refused": refused[0],
                "tenant_spent_usd": str(spent),
                "tenant_reserved_usd": str(reserved),
                "budget_passed": Decimal(spent) + Decimal(reserved) > Decimal("0.3"),
                "load_average": [load_before, load_average()],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
