"""The limits file: its format, every problem reported at once with file and key, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from hive.errors import LimitsFileError
from hive.guard import EMPTY, load_policy, parse_policy, parse_rate
from hive.guard.policy import Rate, _Cache
from hive.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/minute", Rate(100, 60)),
        ("5/second", Rate(5, 1)),
        ("5/s", Rate(5, 1)),
        ("10/30s", Rate(10, 30)),
        ("1000 / hour", Rate(1000, 3600)),
        ("2/days", Rate(2, 86400)),
        ("0.5/second", Rate(0.5, 1)),
    ],
)
def test_a_rate_is_a_count_per_interval(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["100", "100/ms", "ten/second", "0/second", "5/0s", "/minute"])
def test_a_malformed_rate_is_refused_saying_what_a_rate_looks_like(text: str) -> None:
    with pytest.raises(ValueError, match=r"100/minute|above 0"):
        parse_rate(text)


def test_the_shipped_sample_is_valid() -> None:
    policy = load_policy(ROOT / "config" / "limits.yaml")

    assert policy.limits and policy.breakers


def test_every_problem_is_reported_at_once_naming_the_file_and_the_key() -> None:
    text = """
limits:
  service:partner: {rate: 10 per sec, concurrency: 0}
  agent:echo: {tokens_per_minute: 1000}
  tenant:acme: {}
  worker:x: {rate: 1/second}
  model:openai:gpt-4o: {rate: 5/second, colour: blue}
breakers:
  service:partner: {failures: 0, on_open: explode}
  partner: {}
"""
    with pytest.raises(LimitsFileError) as raised:
        parse_policy(text, "limits.yaml")

    problems = raised.value.problems
    expected = [
        "limits.yaml: limits.worker:x: a key must be",
        "limits.yaml: breakers.partner: a key must be",
        "limits.yaml: limits.service:partner.rate: '10 per sec' is not a rate",
        "limits.yaml: limits.service:partner.concurrency:",
        "limits.yaml: limits.model:openai:gpt-4o.colour:",
        "limits.yaml: breakers.service:partner.failures:",
        "limits.yaml: breakers.service:partner.on_open:",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected), problems


def test_meaning_problems_are_found_once_the_shape_is_right() -> None:
    text = "limits:\n  agent:echo: {tokens_per_minute: 1000}\n  tenant:acme: {burst: 3}\n"
    with pytest.raises(LimitsFileError) as raised:
        parse_policy(text, "f.yaml")

    assert raised.value.problems == [
        "f.yaml: limits.agent:echo.tokens_per_minute: only model: entries count tokens",
        "f.yaml: limits.tenant:acme: sets no limit (rate, tokens_per_minute or concurrency)",
    ]


def test_only_the_default_breaker_takes_max_breakers() -> None:
    text = "breakers:\n  default: {max_breakers: 5}\n  service:x: {max_breakers: 5}\n"
    with pytest.raises(LimitsFileError) as raised:
        parse_policy(text, "f.yaml")

    assert raised.value.problems == [
        "f.yaml: breakers.service:x.max_breakers: only default makes breakers"
    ]
    policy = parse_policy("breakers:\n  default: {max_breakers: 5}\n  service:*: {}\n", "f")
    assert policy.made_by_default("service:h1") and policy.made_by_default("provider:p")
    assert not policy.made_by_default("service:*"), "the overflow breaker takes no place"
    assert not parse_policy("breakers:\n  service:x: {}\n", "f").made_by_default("service:y")


def test_not_yaml_and_not_a_mapping_are_refused_with_the_file() -> None:
    with pytest.raises(LimitsFileError, match=r"^f.yaml \(line 3\): not valid YAML: expected"):
        parse_policy("limits:\n  - [unclosed\n", "f.yaml")
    with pytest.raises(LimitsFileError, match=r"f\.yaml: must be a mapping"):
        parse_policy("- a\n- b\n", "f.yaml")
    assert parse_policy("", "f.yaml") == EMPTY


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(LimitsFileError, match="HIVE_LIMITS_FILE: cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_a_file_that_is_not_utf_8_is_refused_and_a_running_worker_keeps_its_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # UnicodeDecodeError escaped: `hive breakers list` and a starting worker printed a
    # traceback, and a file corrupted under running workers failed every step they ran.
    limits = tmp_path / "limits.yaml"
    limits.write_text("limits:\n  agent:echo: {concurrency: 2}\n")
    monkeypatch.setenv("HIVE_LIMITS_FILE", str(limits))
    get_settings.cache_clear()
    try:
        cache = _Cache()
        assert cache.get().limit("agent:echo") is not None
        limits.write_bytes(b"limits:\n  agent:echo: {concurrency: 3}\n\xff\xfe\n")

        with pytest.raises(LimitsFileError, match=r"limits\.yaml: not UTF-8 text \(byte 39\)"):
            load_policy(limits)
        kept = cache.get().limit("agent:echo")
        assert kept is not None and kept.concurrency == 2
    finally:
        get_settings.cache_clear()


def test_lookups_fall_back_to_the_defaults() -> None:
    policy = parse_policy(
        """
limits:
  tenant:default: {rate: 5/second}
  tenant:acme: {rate: 50/second}
breakers:
  default: {failures: 4}
  provider:openai: {failures: 2, on_open: fail}
  service:payments: {on_open: escalate}
""",
        "f.yaml",
    )

    assert policy.limit("tenant:acme").rate == "50/second"  # type: ignore[union-attr]
    assert policy.limit("tenant:other").rate == "5/second"  # type: ignore[union-attr]
    assert policy.limit("agent:echo") is None
    assert policy.breaker("provider:openai").on_open == "fail"  # type: ignore[union-attr]
    assert policy.breaker("service:any").failures == 4  # type: ignore[union-attr]
    assert policy.breaker("service:payments").on_open == "escalate"  # type: ignore[union-attr]
    assert policy.breaker_names() == ["provider:openai", "service:payments"]
    assert EMPTY.breaker("service:any") is None
