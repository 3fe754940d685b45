"""Credentials named by a pipeline are sent to the service and appear nowhere else: not in
any table, not in the worker's logs at DEBUG, not in anything that passed through Redis,
not in Flower. The service echoes them back and puts them in its errors, as careless
services do."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import text

from hive import Client
from hive.db.engine import get_engine
from hive.errors import RunFailed
from tests.support import db, services
from tests.support.flower import Flower
from tests.support.http_service import HttpService, Reply
from tests.support.processes import HiveProcess, wait_until

STEP_TASKS = 7  # echo 1, flaky 2, denied 1, partner-lookup 2, service denied 1


class RedisMonitor:
    """Every command the Redis server runs on one db index, from now until :meth:`stop`:
    the messages, events and keys that pass through, even those gone by the end."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.client = redis.Redis.from_url(f"{services.redis_base_url()}/{index}")
        self.commands: list[str] = []
        self._stopping = threading.Event()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        assert self._started.wait(10), "MONITOR did not start"

    def _watch(self) -> None:
        with self.client.monitor() as monitor:
            self._started.set()
            while not self._stopping.is_set():
                command = monitor.next_command()
                if command["db"] == self.index:
                    self.commands.append(command["command"])

    def stop(self) -> str:
        self._stopping.set()
        self.client.ping()  # one more command, so that the watching thread wakes to stop
        self.thread.join(10)
        return "\n".join(self.commands)


def _forms(secret: str) -> list[str]:
    """The secret, and what it looks like inside base64 at each of the three alignments
    (kombu base64-encodes message bodies)."""
    forms = [secret]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret.encode()).decode()
        forms.append(encoded[4 if shift else 0 : -4])
    return forms


def _tables() -> str:
    """Every row of every table of the test's database, as text."""
    dumped = []
    with get_engine().connect() as conn:
        names = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).scalars()
        for name in list(names):
            rows = conn.execute(text(f'SELECT t::text FROM "{name}" t')).scalars()
            dumped.append(f"-- {name}\n" + "\n".join(rows))
    return "\n".join(dumped)


def _redis_now(client: redis.Redis) -> str:
    """Every key left in the test's Redis db and its value, whatever its type."""
    dumped = []
    for key in client.scan_iter():
        kind = client.type(key).decode()
        dumped.append(f"{key!r} {kind} {_value(client, key, kind)!r}")
    return "\n".join(dumped)


def _value(client: redis.Redis, key: bytes, kind: str) -> object:
    if kind == "string":
        return client.get(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "hash":
        return client.hgetall(key)
    if kind == "set":
        return client.smembers(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return client.xrange(key)
    return kind


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
    service.route("/echo", Reply(echo=True))
    service.route("/flaky", Reply(503, text=f"overloaded, {token}"), Reply(echo=True))
    service.route("/denied", lambda r: Reply(401, text=f"token {r.headers['authorization']}"))
    service.route("/api/denied", lambda r: Reply(403, json={"key": r.headers["x-api-key"]}))
    service.route(
        "/api/v1/customers",
        lambda r: Reply(
            json={"id": r.query["id"], "notes": f"asked with {r.headers['x-api-key']}"}
        ),
    )
    db.execute("TRUNCATE service_instances")
    Client().services.register("partner", service.url("/api"))
    flower = start_flower()
    monitor = RedisMonitor(index)
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
        hive.submit("http-url", {"url": service.url("/echo")}),
        hive.submit("http-url", {"url": service.url("/flaky")}),
        hive.submit("partner-lookup", {"customer_id": "c-1"}),
    ]
    failed = [
        hive.submit("http-url", {"url": service.url("/denied")}),
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
        "the tables": _tables(),
        "the worker's log": worker.log(),
        "Redis, as it went": monitor.stop(),
        "Redis, at the end": _redis_now(client),
        "Flower": _flower(flower, list(flower_tasks())),
    }

    # The credentials did reach the service, and the service echoed them back...
    sent = {r.headers.get("authorization") for r in service.requests}
    assert f"Bearer {token}" in sent
    assert {r.headers.get("x-api-key") for r in service.requests} >= {key}
    assert outputs[0]["body"]["headers"]["authorization"] == "[REDACTED]"
    assert outputs[2]["customer"]["notes"] == "asked with [REDACTED]"
    # ...and every place looked in holds what it should: not an empty look.
    assert all(str(run.id) in seen["the tables"] for run in succeeded + failed)
    records = [
        json.loads(line) for line in seen["the worker's log"].splitlines() if line[:1] == "{"
    ]
    assert {"debug", "info"} <= {r["level"] for r in records}
    assert any(r["logger"].startswith("httpcore") for r in records), "the client's own DEBUG"
    assert "hive.step.http" in seen["Redis, as it went"] and "LPUSH" in seen["Redis, as it went"]
    assert all(str(run.id) in seen["Flower"] for run in succeeded + failed)
    # The credentials appear nowhere, in clear or in base64.
    for place, content in seen.items():
        for secret in (token, key):
            leaked = [form for form in _forms(secret) if form in content]
            assert not leaked, f"a credential is in {place}"
