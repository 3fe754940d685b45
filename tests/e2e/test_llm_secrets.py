"""An llm step's API key is read on the worker and sent to the provider, and found nowhere
else: no table, no log line (JSON, at DEBUG), no Redis key or value, no message sent
through Redis, no CLI output, not even when the provider echoes it in an error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from hive import Client, RunFailed
from tests.support.commands import describe, run_hive
from tests.support.dumps import RedisMonitor, database_texts, decoded, redis_texts
from tests.support.llm_server import LlmServer, Reply
from tests.support.processes import HiveProcess

KEY = "sk-secret-9d2e7b41aa06-must-not-leak"
BACKUP_KEY = "sk-secret-backup-3c5f08e2d7"


@pytest.mark.timeout(180)
def test_the_api_keys_appear_in_no_table_log_redis_key_or_message(
    llm: LlmServer,
    start_worker: Callable[..., HiveProcess],
    redis_db: tuple[redis.Redis, int],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    client, _ = redis_db
    monitor = RedisMonitor(client)
    try:
        worker = start_worker(
            "--concurrency", "2", "--loglevel", "DEBUG",
            extra_env={
                "TEST_LLM_API_KEY": KEY,
                "TEST_LLM_BACKUP_KEY": BACKUP_KEY,
                "HIVE_LOG_FORMAT": "json",
                "HIVE_LLM_PRICES_FILE": str(tmp_path / "none.yaml"),
            },
        )  # fmt: skip
        # A fallback (both keys used), then a provider echoing the key in its 401.
        llm.script("model-a", Reply.failure(503), Reply.failure(401, error=f"Bad key {KEY}"))
        answered = Client().submit("llm-ask", {"question": "q1"}, tenant="acme")
        assert answered.wait(timeout=60)["ask"]["model"] == "model-b"
        refused = Client().submit("llm-ask", {"question": "q2"})
        with pytest.raises(RunFailed) as raised:
            refused.wait(timeout=60)
        outputs = [
            run_hive("runs", "show", str(run.id), "--json", env=env) for run in (answered, refused)
        ]
        outputs.append(run_hive("dlq", "list", "--json", env=env))
        outputs.append(run_hive("usage", "--json", env=env))
    finally:
        commands = monitor.stop()

    # The keys did go where they belong, so not finding them elsewhere means something.
    sent = {r.headers.get("Authorization") for r in llm.requests}
    assert sent == {f"Bearer {KEY}", f"Bearer {BACKUP_KEY}"}
    assert "HTTP 401: Bad key ***" in str(raised.value)
    assert any("LPUSH" in c or "lpush" in c.lower() for c in commands)  # messages seen
    log = worker.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    # DEBUG records of the agent's own calls were written (and searched below).
    assert any(
        r["level"] == "debug" and r["logger"].startswith("hive.agents.builtin.llm") for r in records
    )
    for result in outputs:
        assert result.returncode == 0, describe(result)
    texts = {
        "database": database_texts(),
        "redis": redis_texts(client),
        "redis commands": commands,
        "worker log": [log],
        "cli": [r.stdout + r.stderr for r in outputs],
    }
    for where, found in texts.items():
        for value in found:
            for variant in decoded(value):
                assert KEY not in variant, f"the API key is in the {where}: {value[:300]}"
                assert BACKUP_KEY not in variant, f"the backup key is in the {where}"
