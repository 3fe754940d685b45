"""A real `hive api` process for tests, on a free port, stopped by PID; and API keys made
with the `hive keys` command, as an operator would."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.commands import describe, run_hive
from tests.support.processes import HiveProcess, wait_until
from tests.support.redis_server import free_port

# Tries at a port: free_port()'s port is free when it answers, not when `hive api` binds it;
# any process of the machine (another test session's, an outgoing connection) may take it.
_PORT_TRIES = 3


class _PortTaken(RuntimeError):
    """`hive api` exited because its port was taken meanwhile."""


class Api:
    """`hive api` on 127.0.0.1:<port>, and an HTTP client for it."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        for tries_left in reversed(range(_PORT_TRIES)):
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
            self._log_from = log_path.stat().st_size if log_path.exists() else 0
            self.proc = HiveProcess(["api", "--port", str(self.port), *args], env, log_path)
            self.http = httpx.Client(base_url=self.base_url, timeout=90)
            try:
                wait_until(self._alive, 60, "hive api to answer /healthz")
                return
            except _PortTaken:
                self.stop()
                if not tries_left:
                    raise
            except Exception:
                self.stop()
                raise

    def _alive(self) -> bool:
        if self.proc.proc.poll() is not None:
            own = self.proc.log()[self._log_from :]
            # EADDRINUSE, as `hive api` words it (its own bind check) or as uvicorn does
            taken = "address already in use" in own.lower()
            raise (_PortTaken if taken else RuntimeError)(f"hive api exited early:\n{own[-3000:]}")
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        return self.http.request(method, path, json=json, headers=sent, **kwargs)

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()


def create_key(env: dict[str, str], *args: str) -> tuple[str, str]:
    """``hive keys create ARGS``: the key (printed once) and its id."""
    result = run_hive("keys", "create", *args, env=env)
    assert result.returncode == 0, describe(result)
    key = result.stdout.strip()
    assert key.startswith("hive_"), describe(result)
    return key, key.split("_")[1]


def make_key(tenant: str | None, role: str = "operator", **options: Any) -> tuple[str, str]:
    """A key made in this process through the service layer (a `hive keys create` costs a
    fresh interpreter): the key and its id."""
    from hive import service
    from hive.settings import get_settings

    made = service.create_api_key(
        get_settings(), service.OPERATOR, tenant=tenant, role=role, **options
    )
    return made.key, made.view.id


# How long a revocation published on Redis may take to reach an API process's follower
# thread, on a loaded machine: far below any key record's ttl the tests give.
REVOCATION_DELIVERY_S = 2.0


def refused_soon(api: Api, key: str, timeout_s: float = REVOCATION_DELIVERY_S) -> bool:
    """Whether a call with ``key`` is a 401 before ``timeout_s`` has passed (calls that come
    before are answered 200)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = api.call("GET", "/v1/runs", key=key).status_code
        if status == 401:
            return True
        assert status == 200, status
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
