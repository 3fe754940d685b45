"""`hive flower` shows the farm without handing its users the controls, unless told to."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from hive import Client
from tests.support.commands import describe, run_hive
from tests.support.flower import AUTH, Flower
from tests.support.processes import HiveProcess, wait_until


@pytest.mark.timeout(180)
def test_flower_refuses_worker_shutdown_revoke_and_send_task_by_default(
    start_worker: Callable[..., HiveProcess], start_flower: Callable[..., Flower]
) -> None:
    worker = start_worker("--concurrency", "1", name="target")
    flower = start_flower()
    wait_until(lambda: flower.knows_worker("target@test"), 30, "flower to see the worker")

    shutdown, _ = flower.call("POST", "/api/worker/shutdown/target@test")
    revoke, _ = flower.call("POST", f"/api/task/revoke/{uuid.uuid4()}")
    send, _ = flower.call("POST", "/api/task/send-task/hive.beat.recover_stalled_runs")

    assert (shutdown, revoke, send) == (403, 403, 403)
    assert worker.proc.poll() is None, "the worker was stopped through Flower"


@pytest.mark.timeout(180)
def test_flower_with_allow_control_can_revoke_and_shut_down_a_worker(
    start_worker: Callable[..., HiveProcess], start_flower: Callable[..., Flower]
) -> None:
    worker = start_worker("--concurrency", "1", name="target")
    flower = start_flower("--allow-control")
    wait_until(lambda: flower.knows_worker("target@test"), 30, "flower to see the worker")

    revoke, _ = flower.call("POST", f"/api/task/revoke/{uuid.uuid4()}")
    shutdown, _ = flower.call("POST", "/api/worker/shutdown/target@test")

    assert (revoke, shutdown) == (200, 200)
    wait_until(lambda: worker.proc.poll() is not None, 60, "the worker to shut down")


@pytest.mark.timeout(180)
def test_flower_lists_steps_by_agent_in_its_tasks_its_filters_and_its_metrics(
    start_worker: Callable[..., HiveProcess], start_flower: Callable[..., Flower]
) -> None:
    start_worker("--concurrency", "2", name="steps")
    flower = start_flower()
    wait_until(lambda: flower.knows_worker("steps@test"), 30, "flower to see the worker")

    # Two chatty steps, then an echo: two agents.
    run = Client().submit("logged", {"text": "hi"})
    run.wait(timeout=60)

    def succeeded() -> list[tuple[str, str]]:
        _, tasks = flower.call("GET", "/api/tasks")
        return sorted((t["name"], t["state"]) for t in (tasks or {}).values())

    expected = [
        ("hive.step.chatty", "SUCCESS"),
        ("hive.step.chatty", "SUCCESS"),
        ("hive.step.echo", "SUCCESS"),
    ]
    wait_until(lambda: succeeded() == expected, 30, "flower to list the three steps")
    status, echo_only = flower.call("GET", "/api/tasks?taskname=hive.step.echo")
    assert status == 200
    assert [t["name"] for t in echo_only.values()] == ["hive.step.echo"]
    # Flower shows the message's arguments, which are ids only.
    assert all(str(run.id) in t["args"] for t in echo_only.values())

    status, metrics = flower.fetch("GET", "/metrics")
    assert status == 200
    for agent, count in (("chatty", 2), ("echo", 1)):
        line = (
            f'flower_events_total{{task="hive.step.{agent}",type="task-succeeded",'
            f'worker="steps@test"}} {float(count)}'
        )
        assert line in metrics.splitlines(), metrics[-3000:]
    assert "hive.tasks.run_step" not in metrics


@pytest.mark.timeout(120)
def test_a_step_message_queued_without_the_agent_name_still_runs(
    start_worker: Callable[..., HiveProcess], redis_db: tuple[redis.Redis, int]
) -> None:
    from hive import keys
    from hive.tasks.app import app

    client, _ = redis_db
    run = Client().submit("echo-one", {"text": "queued before"})
    # The message as a farm before shadow names sent it: the task's own name only.
    for queue in client.scan_iter(match=f"{keys.DEFAULT_QUEUE}*"):
        client.delete(queue)
    app.send_task(keys.RUN_STEP_TASK, args=(str(run.id), "echo", 1), queue=keys.DEFAULT_QUEUE)

    worker = start_worker("--concurrency", "1")

    assert run.wait(timeout=60) == {"echo": {"text": "queued before"}}
    assert f"Task {keys.RUN_STEP_TASK}[" in worker.log()
    assert "hive.step.echo" not in worker.log()


@pytest.mark.timeout(120)
def test_flower_ignores_a_flowerconfig_py_in_its_working_directory(
    start_flower: Callable[..., Flower], tmp_path: Path
) -> None:
    marker = tmp_path / "flowerconfig-was-executed"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "flowerconfig.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nread_only = False\n"
    )

    flower = start_flower(cwd=workdir)

    assert not marker.exists()
    assert flower.call("POST", f"/api/task/revoke/{uuid.uuid4()}")[0] == 403


@pytest.mark.timeout(120)
def test_flower_persistent_keeps_its_state_under_the_data_dir(
    start_flower: Callable[..., Flower], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"

    flower = start_flower("--persistent", extra_env={"HIVE_DATA_DIR": str(data_dir)})
    flower.proc.stop()

    assert list((data_dir / "flower").glob("flower.db*")), flower.proc.log()[-3000:]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.10", "flower.example"])
@pytest.mark.timeout(120)
def test_flower_insecure_refuses_an_address_beyond_loopback(
    address: str, hive_env: dict[str, str]
) -> None:
    env = {**os.environ, **hive_env}
    env.pop("HIVE_FLOWER_BASIC_AUTH", None)

    done = run_hive("flower", "--insecure", "--address", address, env=env, timeout_s=30)

    assert done.returncode == 1, describe(done)
    assert done.stderr.strip().splitlines() == [
        f"error: --insecure: refusing to serve Flower without authentication on {address}"
    ]


@pytest.mark.timeout(120)
def test_flower_without_flower_installed_says_to_install_the_extra(
    hive_env: dict[str, str], tmp_path: Path
) -> None:
    # A package that fails to import as an absent one does, ahead of the installed Flower.
    shadow = tmp_path / "shadow" / "flower"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'flower'\", name='flower')\n"
    )
    env = {
        **os.environ,
        **hive_env,
        "HIVE_FLOWER_BASIC_AUTH": ":".join(AUTH),
        "PYTHONPATH": str(shadow.parent),
    }

    done = run_hive("flower", env=env, timeout_s=30)

    assert done.returncode == 1, describe(done)
    assert done.stderr.strip().splitlines() == [
        "error: Flower is not installed: pip install 'hive[flower]'"
    ]


def _task_events_of_one_run(client: redis.Redis, index: int) -> list[str]:
    """The task events published while one run of ``echo-one`` goes through the farm's only
    worker, by routing key (``task.multi``: a batch of them). Channels are shared by every
    db index of the server: kombu names them after the index."""
    listener = client.pubsub()
    listener.psubscribe(f"/{index}.celeryev/*")
    try:
        listener.get_message(timeout=1.0)  # the subscription's confirmation
        Client().submit("echo-one", {"text": "events?"}).wait(timeout=60)
        seen: list[str] = []
        wait_s = time.monotonic() + 2.0  # events are buffered: give them time to arrive
        while time.monotonic() < wait_s:
            message = listener.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else str(channel)
                seen.append(name.rsplit("/", 1)[-1])
        return [key for key in seen if key.startswith("task.")]
    finally:
        listener.close()


@pytest.mark.timeout(180)
def test_a_worker_started_with_no_task_events_publishes_none(
    start_worker: Callable[..., HiveProcess], redis_db: tuple[redis.Redis, int]
) -> None:
    client, index = redis_db
    default = start_worker("--concurrency", "1", name="events")
    assert _task_events_of_one_run(client, index), "the default worker publishes task events"
    default.stop()

    start_worker("--concurrency", "1", "--no-task-events", name="quiet")

    assert _task_events_of_one_run(client, index) == []
