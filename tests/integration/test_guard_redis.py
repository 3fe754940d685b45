"""The guard's Redis scripts, against the real server: GCRA spacing and booked slots,
all-or-nothing admission, token corrections, leased slots, and the breaker's states."""

from __future__ import annotations

import time

import pytest
import redis

from hive import keys, service
from hive.guard.breakers import CLOSED, HALF_OPEN, OPEN, Breakers, gauge_value
from hive.guard.policy import BreakerPolicy
from hive.guard.rates import RateLimiter, requests_limit, tokens_limit
from hive.guard.slots import ConcurrencyLimit, Semaphore
from hive.settings import get_settings

pytestmark = pytest.mark.timeout(60)


def test_a_caller_answered_at_once_books_nothing_and_is_told_each_limits_backlog(
    clean_state: None, redis_db: tuple[redis.Redis, int]
) -> None:
    limiter = RateLimiter()
    # One request per 1000 s: no time passing in the test gives one back.
    limit = requests_limit("api:tenant:acme", interval_s=1000, burst=3)

    decisions = [limiter.admit([limit], "api", book=False) for _ in range(4)]

    assert [d.admitted for d in decisions] == [True, True, True, False]
    backlogs = [d.backlogs_s[0] for d in decisions]
    assert [round(b, -1) for b in backlogs] == [1000, 2000, 3000, 3000]
    assert [limit.remaining(b) for b in backlogs[:3]] == [2, 1, 0]
    refused = decisions[-1]
    assert not refused.booked and 990 < refused.wait_s <= 1000
    client, _ = redis_db
    assert not client.keys("*:held:*"), "a refused caller holds no slot"


def test_a_rate_limit_spaces_requests_and_books_the_next_slot_for_who_waits(
    clean_state: None,
) -> None:
    limiter = RateLimiter()
    limit = requests_limit("service:partner", interval_s=0.5, burst=1)

    assert limiter.admit([limit], "a").admitted
    second = limiter.admit([limit], "b")
    assert not second.admitted and second.booked
    assert 0.4 < second.wait_s <= 0.5
    third = limiter.admit([limit], "c")
    assert not third.admitted and third.booked
    assert 0.9 < third.wait_s <= 1.0, "booked behind b, not on the same slot"
    # b coming back early finds its slot still ahead, and books nothing more.
    again = limiter.admit([limit], "b")
    assert not again.admitted and again.wait_s <= second.wait_s
    time.sleep(second.wait_s)
    assert limiter.admit([limit], "b").admitted, "b's booked slot is its own"
    assert not limiter.admit([limit], "d").admitted, "d waits behind c"


def test_a_burst_lets_that_many_through_at_once(clean_state: None) -> None:
    limiter = RateLimiter()
    limit = requests_limit("agent:echo", interval_s=1.0, burst=3)

    decisions = [limiter.admit([limit], f"s{i}") for i in range(4)]

    assert [d.admitted for d in decisions] == [True, True, True, False]


def test_admission_against_several_limits_spends_none_when_one_says_no(
    clean_state: None,
) -> None:
    limiter = RateLimiter()
    roomy = requests_limit("agent:echo", interval_s=0.001, burst=100)
    tight = requests_limit("tenant:acme", interval_s=120.0, burst=1)
    assert limiter.admit([tight], "first").admitted

    far = limiter.admit([roomy, tight], "second")

    assert not far.admitted and not far.booked, "120 s is past the booking horizon"
    assert far.limit == tight
    # Nothing of the roomy limit was spent: its whole burst is still there.
    assert all(limiter.admit([roomy], f"r{i}").admitted for i in range(100))


def test_tokens_are_estimated_then_corrected_both_ways(clean_state: None) -> None:
    limiter = RateLimiter()
    estimate = tokens_limit("model:openai:gpt-4o", tokens_per_minute=6000, cost=1000)

    assert limiter.admit([estimate], "a").admitted
    # The call used all 6000: the minute is spent.
    limiter.correct(estimate, 5000)
    refused = limiter.admit([estimate], "b")
    assert not refused.admitted
    assert 9 < refused.wait_s <= 10.1, "1000 tokens at 100 a second"
    # It used 1000 after all: given back.
    limiter.correct(estimate, -5000)
    assert limiter.admit([tokens_limit("model:openai:gpt-4o", 6000, 1000)], "c").admitted


def test_a_concurrency_limit_leases_slots_that_come_back_on_release_or_expiry(
    clean_state: None,
) -> None:
    semaphore = Semaphore()
    two = ConcurrencyLimit("service:partner", 2)
    one = ConcurrencyLimit("tenant:acme", 1)

    assert semaphore.acquire([two], "a", lease_s=60).acquired
    assert semaphore.acquire([two], "a", lease_s=60).acquired, "a holder holds one slot"
    assert semaphore.acquire([two, one], "b", lease_s=0.5).acquired
    turned = semaphore.acquire([two], "c", lease_s=60)
    assert (turned.acquired, turned.limit, turned.denials) == (False, two, 1)
    assert semaphore.acquire([two], "c", lease_s=60).denials == 2
    assert semaphore.holders("service:partner") == 2

    semaphore.release([two, one], "b")
    assert semaphore.acquire([two], "c", lease_s=0.3).acquired
    # c's holder never releases (a killed worker): nothing renews its lease, which runs out.
    semaphore.keeper.drop("c")
    assert not semaphore.acquire([two], "d", lease_s=60).acquired
    time.sleep(0.4)
    assert semaphore.acquire([two], "d", lease_s=60).acquired


def test_a_short_lease_never_cuts_a_longer_one_held_beside_it(clean_state: None) -> None:
    # The limit's key once took the lease of whoever acquired last as its TTL: an hour-long
    # step's slot vanished with the key when a short step beside it took the other slot.
    semaphore = Semaphore(keeper_tick_s=3600)  # no renewal: the first lease is all there is
    two = ConcurrencyLimit("tenant:acme", 2)
    assert semaphore.acquire([two], "long", lease_s=3600).acquired
    assert semaphore.acquire([two], "short", lease_s=0.2).acquired
    semaphore.release([two], "short")
    time.sleep(0.4)  # well past the short lease

    assert semaphore.holders("tenant:acme") == 1, "the hour-long slot is still held"
    assert semaphore.acquire([two], "next", lease_s=60).acquired
    assert not semaphore.acquire([two], "one too many", lease_s=60).acquired


def test_a_slot_is_kept_past_its_lease_while_its_holder_runs(clean_state: None) -> None:
    semaphore = Semaphore(keeper_tick_s=0.05)
    one = ConcurrencyLimit("agent:hang", 1)

    # Renewed each time a third of it is spent: 0.67 s to spare for a busy machine's keeper.
    assert semaphore.acquire([one], "abandoned", lease_s=1.0).acquired
    time.sleep(2.5)

    assert not semaphore.acquire([one], "next", lease_s=60).acquired
    assert semaphore.holders("agent:hang") == 1
    semaphore.release([one], "abandoned")
    assert semaphore.acquire([one], "next", lease_s=60).acquired
    assert semaphore.keeper.holding() == 1, "only the live holder is kept"


def test_the_keeper_outlives_a_failure_that_is_not_redis_and_renews_at_its_next_tick(
    clean_state: None,
) -> None:
    # A keeper thread that ended on an unexpected error left every lease of its process to
    # run out under holders still running: the limit then admitted one too many.
    semaphore = Semaphore(keeper_tick_s=0.05)
    one = ConcurrencyLimit("agent:hang", 1)
    real = semaphore.keeper._client
    failures = [RuntimeError("no client for you"), ValueError("nor now")]

    def flaky() -> redis.Redis:
        if failures:
            raise failures.pop(0)
        return real()

    semaphore.keeper._client = flaky
    assert semaphore.acquire([one], "long", lease_s=1.0).acquired
    time.sleep(2.5)  # two failed renewals at the first ticks due, then renewed

    assert not failures, "the keeper tried again after each failure"
    assert not semaphore.acquire([one], "next", lease_s=60).acquired, "the lease was kept"
    assert semaphore.keeper.holding() == 1


def test_the_keeper_renews_every_lease_due_in_one_go_even_after_redis_forgot_its_script(
    clean_state: None,
) -> None:
    semaphore = Semaphore(keeper_tick_s=3600)  # renewed only when the test says so
    three = ConcurrencyLimit("tenant:acme", 3)
    for holder in ("a", "b", "c"):
        assert semaphore.acquire([three], holder, lease_s=2.0).acquired
    time.sleep(1.0)  # due: past a third of the lease
    semaphore.keeper._sha = "0" * 40  # as after Redis restarted or flushed its scripts

    semaphore.keeper.renew_due()
    time.sleep(1.3)  # past the leases as first taken

    assert semaphore.holders("tenant:acme") == 3
    assert semaphore.keeper.holding() == 3
    assert not semaphore.acquire([three], "d", lease_s=60).acquired


def test_a_lease_that_ran_out_is_never_taken_back_from_its_new_holder(
    clean_state: None,
) -> None:
    semaphore = Semaphore(keeper_tick_s=3600)  # renewed only when the test says so
    one = ConcurrencyLimit("agent:hang", 1)
    assert semaphore.acquire([one], "late", lease_s=0.2).acquired
    time.sleep(0.3)  # Redis unreachable for the whole lease, say
    assert semaphore.acquire([one], "next", lease_s=60).acquired

    semaphore.keeper.renew_due()

    assert semaphore.holders("agent:hang") == 1
    assert semaphore.keeper.holding() == 1, "the late holder is let go"
    semaphore.release([one], "next")
    assert semaphore.holders("agent:hang") == 0


def test_all_or_no_slots(clean_state: None) -> None:
    semaphore = Semaphore()
    roomy, full = ConcurrencyLimit("agent:echo", 5), ConcurrencyLimit("tenant:acme", 1)
    assert semaphore.acquire([full], "x", lease_s=60).acquired

    assert not semaphore.acquire([roomy, full], "y", lease_s=60).acquired
    assert semaphore.holders("agent:echo") == 0


POLICY = BreakerPolicy(failures=3, cooldown_s=0.5)


def test_a_breaker_opens_after_failures_in_a_row_and_one_probe_closes_it(
    clean_state: None,
) -> None:
    breakers = Breakers()
    name = "service:partner"
    assert breakers.allow(name, POLICY, "a", 10).allowed

    assert breakers.record(name, POLICY, "a", ok=False) == ""
    assert breakers.record(name, POLICY, "b", ok=True) == "", "a success resets the count"
    assert breakers.record(name, POLICY, "c", ok=False) == ""
    assert breakers.record(name, POLICY, "d", ok=False) == ""
    assert breakers.record(name, POLICY, "e", ok=False) == "closed>open"

    turned = breakers.allow(name, POLICY, "f", 10)
    assert (turned.allowed, turned.state) == (False, OPEN)
    assert 0.3 < turned.wait_s <= 0.5
    assert breakers.read([name])[name].state == OPEN
    time.sleep(0.55)
    assert gauge_value(breakers.read([name])[name]) == 1, "past its cooldown: the next probes"

    probe = breakers.allow(name, POLICY, "probe", 10)
    assert (probe.allowed, probe.state, probe.transition) == (True, HALF_OPEN, "open>half_open")
    others = [breakers.allow(name, POLICY, f"o{i}", 10) for i in range(5)]
    assert not any(o.allowed for o in others), "exactly one probe"
    # A straggler's result from before does not decide.
    assert breakers.record(name, POLICY, "c", ok=True) == ""
    assert breakers.record(name, POLICY, "probe", ok=True) == "half_open>closed"
    assert breakers.allow(name, POLICY, "g", 10).allowed
    assert breakers.read([name])[name].state == CLOSED


def test_a_failed_probe_opens_it_again_and_a_dead_probe_is_replaced(clean_state: None) -> None:
    breakers = Breakers()
    name = "provider:openai"
    for holder in "abc":
        breakers.record(name, POLICY, holder, ok=False)
    time.sleep(0.55)
    assert breakers.allow(name, POLICY, "p1", 10).allowed
    assert breakers.record(name, POLICY, "p1", ok=False) == "half_open>open"
    assert not breakers.allow(name, POLICY, "x", 10).allowed

    time.sleep(0.55)
    assert breakers.allow(name, POLICY, "p2", 0.2).allowed  # then p2's worker dies
    assert not breakers.allow(name, POLICY, "p3", 10).allowed
    time.sleep(0.25)
    assert breakers.allow(name, POLICY, "p3", 10).allowed, "p2's probe lease ran out"
    # A probe that never called (another limit said no) lets the next one go at once.
    breakers.release_probe(name, "p3")
    assert breakers.allow(name, POLICY, "p4", 10).allowed


def test_a_failure_ratio_over_the_window_opens_it(clean_state: None) -> None:
    breakers = Breakers()
    policy = BreakerPolicy(failures=100, failure_ratio=0.5, window_s=60, min_calls=4)
    name = "service:flaky"
    outcomes = [True, False, True, False]  # never two failures in a row

    transitions = [breakers.record(name, policy, f"h{i}", ok) for i, ok in enumerate(outcomes)]

    assert transitions == ["", "", "", "closed>open"]


def test_an_operator_opens_a_breaker_until_closed_and_closes_it(clean_state: None) -> None:
    breakers = Breakers()
    name = "service:partner"

    assert breakers.force(name, "open") == (CLOSED, OPEN)
    held = breakers.read([name])[name]
    assert (held.state, held.open_for_s, held.by) == (OPEN, None, "operator")
    turned = breakers.allow(name, POLICY, "a", 10)
    assert not turned.allowed and turned.wait_s == POLICY.cooldown_s
    assert name in breakers.known()

    assert breakers.force(name, "closed") == (OPEN, CLOSED)
    assert breakers.allow(name, POLICY, "a", 10).allowed


def test_losing_redis_state_closes_breakers(clean_state: None) -> None:
    breakers = Breakers()
    for holder in "abc":
        breakers.record("service:gone", POLICY, holder, ok=False)
    assert breakers.read(["service:gone"])["service:gone"].state == OPEN

    # What a Redis restarted empty would leave of it.
    breakers.client.delete(keys.breaker_key(get_settings().broker.key_prefix, "service:gone"))

    assert breakers.read(["service:gone"])["service:gone"].state == CLOSED
    assert breakers.allow("service:gone", POLICY, "a", 10).allowed


def test_the_exporter_reads_every_breakers_state_from_redis(clean_state: None) -> None:
    from hive.exporter import FarmReader

    breakers = Breakers()
    breakers.force("service:partner", "open")
    for holder in "abc":
        breakers.record("provider:openai", POLICY, holder, ok=False)
    time.sleep(0.55)  # openai's cooldown is over: the next call probes
    breakers.record("service:fine", POLICY, "a", ok=False)

    reader = FarmReader(get_settings())
    try:
        reading = reader.read()
    finally:
        reader.close()

    assert reading.breakers == {
        ("service", "partner"): 2,
        ("provider", "openai"): 1,
        ("service", "fine"): 0,
    }


def test_cleanup_forgets_breakers_whose_state_expired_and_keeps_the_others(
    clean_state: None,
) -> None:
    from hive.beat.tasks import cleanup_now
    from hive.exporter import FarmReader
    from tests.support.processes import wait_until

    breakers = Breakers()
    for holder in "abc":
        breakers.record("service:open", POLICY, holder, ok=False)
    breakers.record("service:recent", POLICY, "a", ok=False)  # closed, one failure counted
    breakers.record("service:idle", POLICY, "a", ok=False)
    breakers.record("service:idle", POLICY, "a", ok=True)
    # Its closed hash expires as an idle one does, a little sooner.
    idle = keys.breaker_key(get_settings().broker.key_prefix, "service:idle")
    breakers.client.pexpire(idle, 1)
    wait_until(lambda: not breakers.client.exists(idle), 10, "the idle breaker's state to expire")
    assert breakers.known() == {"service:open", "service:recent", "service:idle"}
    # Listed without the expired one, before the cleanup too.
    listed = service.list_breakers(get_settings(), service.OPERATOR)
    assert [view.name for view in listed] == ["service:open", "service:recent"]

    result = cleanup_now()

    assert result is not None and result["breakers_pruned"] == 1
    assert breakers.known() == {"service:open", "service:recent"}
    reader = FarmReader(get_settings())
    try:
        assert set(reader.read().breakers or {}) == {("service", "open"), ("service", "recent")}
    finally:
        reader.close()
    # A breaker that fails again is indexed again.
    breakers.record("service:idle", POLICY, "a", ok=False)
    assert "service:idle" in breakers.known()
    assert cleanup_now() == {"deregistered": [], "breakers_pruned": 0}
