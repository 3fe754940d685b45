"""scripts/services.py starts a throwaway Redis that wants the password HIVE_BROKER_URL names."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
import redis

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The script as a module, keeping its state under tmp_path (never the checkout's)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    spec = importlib.util.spec_from_file_location("services_script", ROOT / "scripts/services.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "services_script", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    state = tmp_path / "redis"
    monkeypatch.setattr(module, "STATE", tmp_path)
    monkeypatch.setattr(module, "REDIS_DIR", state)
    monkeypatch.setattr(module, "REDIS_PID", state / "redis.pid")
    monkeypatch.setattr(module, "REDIS_LOG", state / "redis.log")
    yield module
    module.stop_redis()


@pytest.mark.parametrize(
    ("user", "password"), [("", "plain-pw"), ("", 'odd "pw" \\ @:/'), ("hive", "acl-pw")]
)
@pytest.mark.timeout(60)
def test_a_throwaway_redis_wants_the_password_of_the_broker_url(
    user: str, password: str, services: ModuleType
) -> None:
    port = free_port()
    url = f"redis://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}/0"
    target = services.RedisTarget(url, services.Endpoint("127.0.0.1", port))

    services.start_redis(target, target.endpoint)

    assert redis.Redis.from_url(url).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, username=user or None, password="wrong").ping()
    pid = (services.REDIS_PID).read_text().strip()
    ps = subprocess.run(["ps", "-o", "args=", "-p", pid], capture_output=True, text=True)
    assert password not in ps.stdout


def test_set_up_without_prometheus_and_without_root_names_the_install_line(
    services: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "_find_binary", lambda *_: None)
    monkeypatch.setattr(services.os, "geteuid", lambda: 1000)
    with pytest.raises(services.ServiceError) as raised:
        services.ensure_prometheus()
    assert str(raised.value) == (
        "prometheus or its alertmanager is not installed; run: "
        "sudo apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"
    )
