"""Admission as the step task and ctx.call use it, against the real Redis: which limits and
breakers apply to what, tokens estimated then corrected, StepDeferred and BreakerOpen."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from hive import keys
from hive.agents.base import Resource
from hive.errors import ApprovalRequired, BreakerOpen, StepDeferred
from hive.exporter import FarmReader
from hive.guard import FarmCalls, StepInfo, admit_step, parse_policy
from hive.guard.breakers import Breakers
from hive.settings import get_settings

pytestmark = pytest.mark.timeout(60)

POLICY = parse_policy(
    """
limits:
  agent:echo: {concurrency: 1}
  tenant:default: {rate: 1/hour}
  model:acme:big: {tokens_per_minute: 1000}
  model:acme: {concurrency: 2}
breakers:
  service:partner: {failures: 2, cooldown_s: 60}
  provider:acme: {failures: 1, cooldown_s: 60, on_open: fail}
""",
    "limits.yaml",
)


def _step(step_id: str, tenant: str | None = None, agent: str = "echo") -> StepInfo:
    return StepInfo("run", step_id, 1, agent, tenant, timeout_s=30, worker="w@test")


def test_a_step_holds_its_agents_slot_while_it_runs(clean_state: None) -> None:
    with admit_step(_step("a"), POLICY):
        with pytest.raises(StepDeferred) as raised, admit_step(_step("b"), POLICY):
            pass
        assert raised.value.kind == "concurrency"
        assert raised.value.reason == "concurrency limit agent:echo (1 at once)"
        assert 0.05 <= raised.value.countdown_s <= 0.2
    with admit_step(_step("b"), POLICY):
        pass


def test_a_step_turned_away_again_and_again_waits_longer_each_time(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    # Each deferral sends the step back as its next attempt: counted per attempt, every
    # time was the first, the countdown stayed at its 0.1 s floor and each attempt left
    # an entry in the limit's waiters hash.
    countdowns: list[float] = []
    with admit_step(_step("a"), POLICY):
        for attempt in range(1, 11):
            turned = StepInfo("run", "b", attempt, "echo", None, timeout_s=30, worker="w@t")
            with pytest.raises(StepDeferred) as raised, admit_step(turned, POLICY):
                pass
            countdowns.append(raised.value.countdown_s)
    assert countdowns[-1] > 2.5, countdowns  # 0.1 s x 1.5^9 = 3.8 s, less a quarter
    client, _ = redis_db
    [waiters] = [k for k in client.keys("*") if k.endswith(b":waiting")]
    assert client.hlen(waiters) <= 1, "one entry per waiting step, not per attempt"


def test_each_tenant_gets_the_default_limit_of_its_own(clean_state: None) -> None:
    with admit_step(_step("a", "acme", agent="other"), POLICY):
        pass
    with admit_step(_step("b", "globex", agent="other"), POLICY):
        pass
    with pytest.raises(StepDeferred) as raised, admit_step(_step("c", "acme", "other"), POLICY):
        pass
    assert (raised.value.kind, raised.value.reason) == (
        "rate_limit",
        "rate limit tenant:acme (requests)",
    )
    # An hour away, past the booking horizon: unbooked, back when it is within it.
    assert 3600 - 60 - 1 < raised.value.countdown_s <= 3600 - 60 + 15
    # No tenant (the operator's runs): no tenant limit.
    with admit_step(_step("d", None, agent="other"), POLICY):
        pass


def test_a_model_call_counts_tokens_and_its_providers_limits(clean_state: None) -> None:
    calls = FarmCalls(_step("a"), POLICY)
    with calls(Resource("model", "acme:big", tokens=400)) as ticket:
        ticket.used_tokens(1000)  # the whole minute's tokens
    with pytest.raises(StepDeferred) as raised, calls(Resource("model", "acme:big", tokens=10)):
        pass
    assert raised.value.reason == "rate limit model:acme:big (tokens)"
    assert 0.5 < raised.value.countdown_s <= 0.7, "10 tokens at 1000 a minute, booked"
    # Another model of the provider: only model:acme's concurrency applies.
    small = Resource("model", "acme:small")
    with calls(small), calls(small), pytest.raises(StepDeferred) as third, calls(small):
        pass
    assert third.value.reason == "concurrency limit model:acme (2 at once)"


def test_failures_leaving_the_block_open_the_breaker_and_defer_the_next_call(
    clean_state: None,
) -> None:
    calls = FarmCalls(_step("a"), POLICY)
    with calls(Resource("service", "partner")) as ticket:
        ticket.failed()  # handled by the agent, said aloud
    with pytest.raises(RuntimeError), calls(Resource("service", "partner")):
        raise RuntimeError("503")

    with pytest.raises(StepDeferred) as raised, calls(Resource("service", "partner")):
        pass
    assert (raised.value.kind, raised.value.reason) == (
        "breaker",
        "breaker service:partner is open",
    )
    assert 59 < raised.value.countdown_s <= 60
    # Unlimited services pass untouched.
    with calls(Resource("service", "other")):
        pass


def test_default_makes_at_most_max_breakers_and_the_hosts_past_them_share_one(
    clean_state: None,
) -> None:
    # An http step's URLs from a run's input: each host would be a breaker of its own, its
    # own Redis hash and hive_breaker_state series, without end.
    policy = parse_policy(
        "breakers:\n  default: {failures: 2, cooldown_s: 60, max_breakers: 3}\n", "limits.yaml"
    )
    calls = FarmCalls(_step("a"), policy)
    for i in range(20):
        # Past the third host, they share service:*, open once two of them failed.
        with pytest.raises((RuntimeError, StepDeferred)), calls(Resource("service", f"h{i}")):
            raise RuntimeError("503")

    breakers = Breakers()
    assert breakers.places() == {"service:h0", "service:h1", "service:h2"}
    assert breakers.known() == breakers.places() | {"service:*"}
    assert breakers.read(["service:*"])["service:*"].state == "open"
    deferred = pytest.raises(StepDeferred, match="breaker service:\\* is open")
    with deferred, calls(Resource("service", "h99")):
        pass
    with calls(Resource("service", "h0")):  # its own breaker: one failure, closed
        pass
    # One an operator opens by name is its own, place or none.
    breakers.force("service:h7", "open")
    with pytest.raises(StepDeferred, match="service:h7 is open"), calls(Resource("service", "h7")):
        pass
    reader = FarmReader(get_settings())
    try:
        series = set(reader.read().breakers or {})
    finally:
        reader.close()
    # The default's three, the shared one, and the operator's.
    names = {"h0", "h1", "h2", "*", "h7"}
    assert series == {("service", name) for name in names}


def test_a_place_idle_with_no_state_left_is_given_to_the_next_host(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    policy = parse_policy("breakers:\n  default: {failures: 1, max_breakers: 2}\n", "f")
    calls = FarmCalls(_step("a"), policy)
    with calls(Resource("service", "idle.example")):
        pass
    with pytest.raises(RuntimeError), calls(Resource("service", "open.example")):
        raise RuntimeError("503")  # open: its state is kept for a day past its cooldown
    client, _ = redis_db
    places = keys.breaker_places(get_settings().broker.key_prefix)
    # Both idle for longer than a closed breaker's state lasts; idle's state expired.
    client.zadd(places, {"service:idle.example": 0, "service:open.example": 0})
    client.delete(keys.breaker_key(get_settings().broker.key_prefix, "service:idle.example"))

    with calls(Resource("service", "new.example")):
        pass

    assert Breakers().places() == {"service:open.example", "service:new.example"}


def test_a_breaker_whose_policy_says_fail_fails_the_step_at_once(clean_state: None) -> None:
    calls = FarmCalls(_step("a"), POLICY)
    with pytest.raises(RuntimeError), calls(Resource("model", "acme:big")):
        raise RuntimeError("500")

    refused = pytest.raises(BreakerOpen, match="breaker provider:acme is open")
    with refused, calls(Resource("model", "acme:big")):
        pass
    assert Breakers().read(["provider:acme"])["provider:acme"].state == "open"


def test_a_deferral_inside_a_call_is_no_word_on_its_breaker(clean_state: None) -> None:
    calls = FarmCalls(_step("a"), POLICY)
    for _ in range(3):
        with pytest.raises(StepDeferred), calls(Resource("service", "partner")):
            raise StepDeferred("another limit", 1.0, "rate_limit")

    assert Breakers().read(["service:partner"])["service:partner"].state == "closed"


def test_a_breaker_whose_policy_says_escalate_holds_the_step_only_while_open(
    clean_state: None,
) -> None:
    policy = parse_policy(
        "breakers:\n  service:pay: {failures: 1, cooldown_s: 60, on_open: escalate}\n", "f.yaml"
    )
    info = StepInfo(str(uuid.uuid4()), "a", 1, "echo", None, timeout_s=30, worker="w@test")
    calls = FarmCalls(info, policy)
    with pytest.raises(RuntimeError), calls(Resource("service", "pay")):
        raise RuntimeError("503")

    with pytest.raises(ApprovalRequired) as held, calls(Resource("service", "pay")):
        pass
    assert (held.value.source, held.value.reason) == (
        "breaker",
        "breaker service:pay is open (on_open: escalate)",
    )
    # Half-open, with a probe out: the probe decides soon, and the step only waits.
    Breakers().force("service:pay", "open", for_s=0.001)
    while Breakers().read(["service:pay"])["service:pay"].open_for_s != 0:
        time.sleep(0.01)  # its cooldown over: the next call is the probe
    wait = StepInfo(str(uuid.uuid4()), "b", 1, "echo", None, timeout_s=30, worker="w@test")
    probe, other = calls(Resource("service", "pay")), FarmCalls(wait, policy)
    with probe, pytest.raises(StepDeferred) as deferred, other(Resource("service", "pay")):
        pass
    assert deferred.value.reason == "breaker service:pay is half-open"
