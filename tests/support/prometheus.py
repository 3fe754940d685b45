"""A real Prometheus server for tests: its own port, config and data directory under tmp."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support.redis_server import free_port
from tests.support.services import missing

INSTALL = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def binary(name: str) -> str:
    """``prometheus``, ``promtool``, ``prometheus-alertmanager`` or ``amtool``; skips (fails
    under CI=true) when not installed."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (scripts/bootstrap.sh installs it: {INSTALL})")
    assert found is not None
    return found


class Prometheus:
    """``prometheus`` scraping ``targets`` (job -> host:port list) every second, or run with
    a whole ``config`` of the caller's."""

    def __init__(
        self,
        workdir: Path,
        targets: dict[str, list[str]],
        rule_files: list[Path] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = config or {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]}
                for job, hosts in targets.items()
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self._log = (workdir / "prometheus.log").open("ab")
        self.log_path = workdir / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # The Debian build looks for its console files under /etc; none are needed.
                f"--web.console.templates={workdir}",
                f"--web.console.libraries={workdir}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready:\n{self.log_path.read_text()[-3000:]}")

    def api(self, path: str, **params: str) -> Any:
        """``/api/v1/<path>``'s ``data``; raises on an error status (a bad query, say)."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            raise AssertionError(f"{path} {params}: {body.get('error')}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (None when it has no series)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
