"""A `hive flower` process for tests, and calls to its pages and API with its password."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.processes import HiveProcess

AUTH = ("admin", "flower-pw")


class Flower:
    def __init__(self, proc: HiveProcess, port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str) -> tuple[int, Any]:
        status, body = self.fetch(method, path)
        return status, json.loads(body) if body else None

    def fetch(self, method: str, path: str) -> tuple[int, str]:
        token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Authorization": f"Basic {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def knows_worker(self, name: str) -> bool:
        status, workers = self.call("GET", "/api/workers?refresh=1")
        return status == 200 and name in (workers or {})
