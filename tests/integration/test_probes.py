"""beat's health probes against a real HTTP server on loopback: a bounded number at once,
each with its whole timeout from its start, tenants taking turns."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from hive.beat.health import taking_turns
from hive.beat.probes import Verdict, probe_all
from tests.support.http_stub import HealthStub
from tests.support.processes import wait_until


@pytest.fixture
def stub() -> Iterator[HealthStub]:
    server = HealthStub({"ok": 200, "hang": "hang", "gate": "gate"})
    yield server
    server.close()


def test_probes_hold_at_most_max_at_once_connections(stub: HealthStub) -> None:
    urls = {f"gated-{i}": stub.url("gate") for i in range(15)}
    with ThreadPoolExecutor(1) as pool:
        probing = pool.submit(probe_all, urls, 60.0, 4)
        wait_until(lambda: stub.held == 4, 30, "the first turn of probes to arrive")
        stub.gate.set()
        probes = probing.result(timeout=60)

    assert stub.peak == 4
    assert stub.hits == {"gate": 15}
    assert {p.verdict for p in probes.values()} == {Verdict.PASS}


def test_a_probe_that_waits_its_turn_still_gets_its_whole_timeout(stub: HealthStub) -> None:
    # One tenant's 12 hanging URLs first, another's 3 healthy ones after them: with 4 at
    # once, the healthy ones wait three turns, and still pass (their timeout starts with
    # them, not with the sweep).
    urls = {f"hang-{i}": stub.url("hang") for i in range(12)}
    urls |= {f"ok-{i}": stub.url("ok") for i in range(3)}

    probes = probe_all(urls, 1.0, 4)

    assert stub.hits == {"hang": 12, "ok": 3}
    assert {k: p.verdict for k, p in probes.items()} == {
        **{f"hang-{i}": Verdict.FAIL for i in range(12)},
        **{f"ok-{i}": Verdict.PASS for i in range(3)},
    }
    assert probes["hang-0"].output == "no answer within 1s"


def test_tenants_take_turns_so_a_tenant_with_many_urls_goes_first_only_once() -> None:
    targets = [SimpleNamespace(id=f"a{i}", tenant="acme") for i in range(4)]
    targets += [SimpleNamespace(id="g0", tenant="globex"), SimpleNamespace(id="s0", tenant=None)]
    targets += [SimpleNamespace(id="g1", tenant="globex")]

    order = [t.id for t in taking_turns(targets)]

    assert order == ["a0", "g0", "s0", "a1", "g1", "a2", "a3"]
