"""Credentials named by a pipeline are sent to the service and appear nowhere else: not in
any table, not in the worker's logs at DEBUG, not in anything that passed through Redis,
not in Flower. The service echoes them back and puts them in its errors, as careless
services do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from hive import Client
from hive.errors import RunFailed
from tests.support.dumps import RedisMonitor, database_texts, decoded, redis_texts
from tests.support.flower import Flower
from tests.support.http_service import HttpService, Reply
from tests.support.processes import HiveProcess, wait_until

STEP_TASKS = 7  # echo 1, flaky 2, denied 1, partner-lookup 2, service denied 1


def _flower(flower: Flower, task_ids: list[str]) -> str:
    pages = ["/api/tasks", "/api/workers?refresh=1", "/metrics", "/tasks", "/workers"]
    # What the /tasks page's table loads.
    pages += [
        "/tasks/datatable?draw=1&start=0&length=100&search%5Bvalue%5D=&order%5B0%5D%5Bcolumn%5D=0"
        "&columns%5B0%5D%5Bdata%5D=name&order%5B0%5D%5Bdir%5D=asc"
    ]
    pages += [f"/api/task/info/{task}" for task in task_ids]
    pages += [f"/task/{task}" for task in task_ids]
    fetched = []
    for page in pages:
        status, body = flower.fetch("GET", page)
        assert status == 200, f"flower {page}: {status}"
        fetched.append(f"-- {page}\n{body}")
    return "\n".join(fetched)


@pytest.fixture
def service() -> Iterator[HttpService]:
    server = HttpService()
    yield server
    server.close()


@pytest.mark.timeout(240)
def test_credentials_reach_the_service_and_appear_in_no_table_log_message_or_flower_page(
    start_worker: Callable[..., HiveProcess],
    start_flower: Callable[..., Flower],
    service: HttpService,
    redis_db: tuple[redis.Redis, int],
) -> None:
    token, key = f"tok-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"
    client, index = redis_db
    service.route("/api/echo", Reply(echo=True))
    service.route("/api/flaky", Reply(503, text=f"overloaded, {token}"), Reply(echo=True))
    service.route(
        "/api/unauthorized", lambda r: Reply(401, text=f"token {r.headers['authorization']}")
    )
    service.route("/api/denied", lambda r: Reply(403, json={"key": r.headers["x-api-key"]}))
    service.route(
        "/api/v1/customers",
        lambda r: Reply(
            json={"id": r.query["id"], "notes": f"asked with {r.headers['x-api-key']}"}
        ),
    )
    Client().services.register("partner", service.url("/api"))
    flower = start_flower()
    monitor = RedisMonitor(client, db=index)
    worker = start_worker(
        "--concurrency", "2", "--loglevel", "DEBUG", name="creds",
        extra_env={
            "PARTNER_TOKEN": token, "PARTNER_API_KEY": key,
            "HIVE_LOG_FORMAT": "json", "HIVE_LOG_LEVEL": "DEBUG",
        },
    )  # fmt: skip
    wait_until(lambda: flower.knows_worker("creds@test"), 30, "flower to see the worker")

    hive = Client()
    succeeded = [
        hive.submit("http-bearer", {"path": "/echo"}),
        hive.submit("http-bearer", {"path": "/flaky"}),
        hive.submit("partner-lookup", {"customer_id": "c-1"}),
    ]
    failed = [
        hive.submit("http-bearer", {"path": "/unauthorized"}),
        hive.submit("http-service", {"path": "/denied"}),
    ]
    outputs = [run.wait(timeout=60) for run in succeeded]
    for run in failed:
        with pytest.raises(RunFailed):
            run.wait(timeout=60)

    def flower_tasks() -> dict[str, dict[str, object]]:
        _, tasks = flower.call("GET", "/api/tasks")
        return {k: v for k, v in (tasks or {}).items() if str(v["name"]).startswith("hive.step.")}

    wait_until(
        lambda: [t["state"] for t in flower_tasks().values()].count("SUCCESS") == STEP_TASKS,
        30,
        "flower to have every step task done",
    )
    seen = {
        "the tables": "\n".join(database_texts()),
        "the worker's log": worker.log(),
        "Redis, as it went": "\n".join(monitor.stop()),
        "Redis, at the end": "\n".join(redis_texts(client)),
        "Flower": _flower(flower, list(flower_tasks())),
    }

    # The credentials did reach the service, and the service echoed them back...
    sent = {r.headers.get("authorization") for r in service.requests}
    assert f"Bearer {token}" in sent
    assert {r.headers.get("x-api-key") for r in service.requests} >= {key}
    assert outputs[0]["body"]["headers"]["authorization"] == "***"
    assert outputs[2]["customer"]["notes"] == "asked with ***"
    # ...and every place looked in holds what it should: not an empty look.
    assert all(str(run.id) in seen["the tables"] for run in succeeded + failed)
    records = [
        json.loads(line) for line in seen["the worker's log"].splitlines() if line[:1] == "{"
    ]
    assert {"debug", "info"} <= {r["level"] for r in records}
    assert any(r["logger"].startswith("httpcore") for r in records), "the client's own DEBUG"
    assert "hive.step.http" in seen["Redis, as it went"] and "LPUSH" in seen["Redis, as it went"]
    assert all(str(run.id) in seen["Flower"] for run in succeeded + failed)
    # The credentials appear nowhere, in clear or in base64 (kombu's message bodies).
    for place, content in seen.items():
        for variant in decoded(content):
            assert token not in variant and key not in variant, f"a credential is in {place}"
