"""The registry's rules without a server: probe verdicts, status transitions, arguments."""

from __future__ import annotations

import pytest

from hive.beat.health import next_state
from hive.beat.probes import Verdict, verdict_of
from hive.errors import InvalidArgument
from hive.service.service_args import check_lookup, check_registration
from hive.statuses import ServiceStatus

PASSING, WARNING, CRITICAL = ServiceStatus.PASSING, ServiceStatus.WARNING, ServiceStatus.CRITICAL


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(200, Verdict.PASS), (204, Verdict.PASS), (299, Verdict.PASS), (429, Verdict.WARN),
     (301, Verdict.FAIL), (404, Verdict.FAIL), (500, Verdict.FAIL), (503, Verdict.FAIL)],
)  # fmt: skip
def test_2xx_passes_429_warns_and_any_other_answer_fails(code: int, verdict: Verdict) -> None:
    assert verdict_of(code) is verdict


def test_failures_below_the_threshold_keep_the_status_and_reaching_it_is_critical() -> None:
    assert next_state(PASSING, 0, Verdict.FAIL, ttl_expired=False, threshold=3) == (PASSING, 1)
    assert next_state(WARNING, 1, Verdict.FAIL, ttl_expired=False, threshold=3) == (WARNING, 2)
    assert next_state(PASSING, 2, Verdict.FAIL, ttl_expired=False, threshold=3) == (CRITICAL, 3)
    assert next_state(CRITICAL, 7, Verdict.FAIL, ttl_expired=False, threshold=3) == (CRITICAL, 8)


def test_one_success_is_passing_again_and_429_is_a_warning_that_resets_the_count() -> None:
    assert next_state(CRITICAL, 9, Verdict.PASS, ttl_expired=False, threshold=3) == (PASSING, 0)
    assert next_state(PASSING, 2, Verdict.WARN, ttl_expired=False, threshold=3) == (WARNING, 0)


def test_an_expired_ttl_keeps_the_instance_critical_whatever_the_probe_says() -> None:
    for verdict in Verdict:
        status, _ = next_state(CRITICAL, 0, verdict, ttl_expired=True, threshold=3)
        assert status is CRITICAL


def _register(**overrides: object) -> None:
    arguments: dict[str, object] = {
        "name": "tool-api", "url": "http://tools:8080", "instance_id": None,
        "health_url": None, "ttl_s": None, "deregister_after_s": None, "meta": {},
    }  # fmt: skip
    arguments.update(overrides)
    name, url = arguments.pop("name"), arguments.pop("url")
    check_registration(name, url, **arguments)  # type: ignore[arg-type]


def test_a_well_formed_registration_passes() -> None:
    _register(
        health_url="https://tools:8443/health?probe=1", ttl_s=30, deregister_after_s=600.0,
        meta={"zone": "eu-1", "v": ""}, instance_id="tools-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"name": ""}, "service name '' must be 1 to 200"),
        ({"name": "x" * 201}, "service name"),
        ({"name": "a/b"}, "service name 'a/b' must be"),
        ({"name": 7}, "service name must be text, not int"),
        ({"url": "ftp://h/"}, "url must be an http:// or https:// URL"),
        ({"url": "http:///path"}, "url names no host"),
        ({"url": "http://h:99999/"}, "url has a port that is not a number"),
        ({"url": "http://h/ x"}, "url must not contain spaces"),
        ({"url": "http://u:p@h/"}, "url must not carry user:password@"),
        ({"url": "http://h/" + "a" * 2000}, "url is longer than 2000"),
        ({"health_url": "localhost:80"}, "health_url must be an http://"),
        ({"ttl_s": 0}, "ttl_s must be a positive number of seconds"),
        ({"ttl_s": -1.0}, "ttl_s must be"),
        ({"ttl_s": float("inf")}, "ttl_s must be"),
        ({"ttl_s": True}, "ttl_s must be"),
        ({"ttl_s": "30s"}, "ttl_s must be"),
        ({"deregister_after_s": 10 * 365 * 86400.0}, "deregister_after_s must be"),
        ({"meta": ["a"]}, "meta must be a mapping"),
        ({"meta": {f"k{i}": "v" for i in range(65)}}, "meta has 65 keys; at most 64"),
        ({"meta": {"": "v"}}, "meta key '' must be"),
        ({"meta": {"k": 1}}, "meta['k'] must be text"),
        ({"meta": {"k": "v" * 513}}, "meta['k'] must be text of at most 512"),
        ({"instance_id": "a b"}, "instance id 'a b' must be"),
    ],
)
def test_a_registration_argument_out_of_bounds_is_refused_by_name(
    overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        _register(**overrides)
    assert problem in str(refused.value)


def test_every_bad_argument_is_named_at_once() -> None:
    with pytest.raises(InvalidArgument) as refused:
        _register(url="ftp://h", ttl_s=0, meta={"k": 1})
    assert len(refused.value.problems) == 3


def test_listing_arguments_are_checked() -> None:
    check_lookup(name="search", status="warning", limit=5)
    with pytest.raises(InvalidArgument, match="status must be one of passing, warning, critical"):
        check_lookup(status="down")
    with pytest.raises(InvalidArgument, match="limit must be a whole number"):
        check_lookup(limit=0)
    with pytest.raises(InvalidArgument, match="instance id must be text"):
        check_lookup(instance_id=3)


def test_the_health_sweep_and_the_cleanup_join_beat_on_their_own_intervals() -> None:
    from hive import keys
    from hive.beat.schedule import beat_schedule
    from hive.settings import HealthSettings, Settings

    settings = Settings(health=HealthSettings(interval_s=7, cleanup_interval_s=90))
    schedule = {entry["task"]: entry for entry in beat_schedule(settings).values()}

    health, cleanup = schedule[keys.HEALTH_TASK], schedule[keys.CLEANUP_TASK]
    assert (health["schedule"], health["options"]["expires"]) == (7, 7)
    assert (cleanup["schedule"], cleanup["options"]["expires"]) == (90, 90)
    assert {health["options"]["queue"], cleanup["options"]["queue"]} == {keys.MAINTENANCE_QUEUE}
    assert (keys.HEALTH_TASK, keys.CLEANUP_TASK) == (
        "hive.beat.health_sweep",
        "hive.beat.cleanup_services",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HIVE_HEALTH_FAILURES", "0"), ("HIVE_HEALTH_TIMEOUT_S", "0"),
     ("HIVE_HEALTH_INTERVAL_S", "-1"), ("HIVE_CLEANUP_INTERVAL_S", "nan")],
)  # fmt: skip
def test_health_settings_out_of_range_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    from hive.errors import SettingsError
    from hive.settings import load_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert refused.value.variable == variable
