"""The limits file: every fleet-wide limit and breaker, declared in one place.

``HIVE_LIMITS_FILE`` names a YAML file that every worker reads (and reads again when it
changes: its name, size and modification time are looked at before each admission)::

    limits:
      agent:summarize:      {rate: 100/minute, concurrency: 4}
      tenant:default:       {rate: 50/second, concurrency: 20}   # each tenant, unless named
      tenant:acme:          {rate: 200/second}
      service:partner:      {rate: 10/second, burst: 5, concurrency: 8}
      model:openai:         {rate: 3000/minute}                    # all of a provider's models
      model:openai:gpt-4o:  {tokens_per_minute: 200000, concurrency: 50}
    breakers:
      default:              {failures: 3, cooldown_s: 30}          # every service and provider
      service:partner:      {failures: 5, failure_ratio: 0.5, window_s: 60, min_calls: 20}
      provider:openai:      {on_open: fail}
      service:payments:     {on_open: escalate}                    # a person decides

``default`` makes a breaker for each service (a host, for a URL) and provider not named,
up to its ``max_breakers`` at once (100): past that, the others share one breaker per kind,
``service:*`` and ``provider:*`` (which the file may name to give them their own policy), so
URLs a run supplies cannot make breakers, Redis keys and ``hive_breaker_state`` series
without bound. A place is given back once its breaker has been idle with no state left.

Agent and tenant limits are admitted by the step task before the agent runs; service and
model limits and breakers around each ``ctx.call(resource)``. The file is validated whole
when loaded, with pydantic: every problem at once, each naming the file and the key.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hive.errors import LimitsFileError
from hive.settings import get_settings

logger = logging.getLogger(__name__)

_UNITS_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
            "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
            "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
            "d": 86400.0, "day": 86400.0, "days": 86400.0}  # fmt: skip
_RATE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<k>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)\s*$")
_KEY = re.compile(r"^(agent|tenant|service):[^:\s]+$|^model:[^:\s]+(:[^\s]+)?$")
_BREAKER = re.compile(r"^(service|provider):[^:\s]+$|^default$")


@dataclass(frozen=True)
class Rate:
    """``count`` requests (or tokens) every ``per_s`` seconds."""

    count: float
    per_s: float

    @property
    def interval_s(self) -> float:
        """GCRA's emission interval: the spacing of one unit at this rate."""
        return self.per_s / self.count


def parse_rate(text: str) -> Rate:
    """``100/minute``, ``5/second``, ``10/30s``, ``1000/hour``, ``2/day`` as a :class:`Rate`."""
    match = _RATE.match(text.lower())
    unit = _UNITS_S.get(match.group("unit")) if match else None
    if match is None or unit is None:
        raise ValueError(f"{text!r} is not a rate like 100/minute, 5/second or 10/30s")
    count, k = float(match.group("n")), float(match.group("k") or 1)
    if count <= 0 or k <= 0:
        raise ValueError(f"{text!r}: the count and the interval must be above 0")
    return Rate(count, k * unit)


class LimitEntry(BaseModel):
    """The limits on one agent, tenant, service or model."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rate: str | None = Field(default=None, description="requests per interval: 100/minute")
    burst: int = Field(default=1, ge=1, description="requests let through at once, idle")
    tokens_per_minute: int | None = Field(default=None, gt=0, description="model entries only")
    concurrency: int | None = Field(default=None, ge=1, description="at most this many at once")

    @field_validator("rate")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @property
    def requests(self) -> Rate | None:
        return parse_rate(self.rate) if self.rate else None


class BreakerPolicy(BaseModel):
    """When a service's or provider's breaker opens, for how long, and what steps then do."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    failures: int = Field(default=3, ge=1, description="consecutive failures that open it")
    failure_ratio: float | None = Field(default=None, gt=0, le=1)
    window_s: float = Field(default=60.0, gt=0, description="the failure ratio's window")
    min_calls: int = Field(default=10, ge=1, description="calls in the window before a ratio")
    cooldown_s: float = Field(default=30.0, gt=0, le=86400, description="open this long")
    on_open: Literal["defer", "fail", "escalate"] = Field(
        default="defer",
        description="defer the step until the cooldown ends, fail it for good, or hold it "
        "for a person's approval",
    )
    max_breakers: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="default only: breakers it makes at once; the names past them share "
        "service:* or provider:*",
    )

    @property
    def idle_ms(self) -> int:
        """How long a closed breaker's state outlives its last call (:mod:`breakers`)."""
        return int(max(self.window_s, 60.0) * 2 * 1000)


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limits: dict[str, LimitEntry] = Field(default_factory=dict)
    breakers: dict[str, BreakerPolicy] = Field(default_factory=dict)


OVERFLOW = "*"
"""The name of the breakers ``default`` could not make (``service:*``, ``provider:*``)."""


@dataclass(frozen=True)
class Policy:
    """The limits file as workers use it; :data:`EMPTY` when there is none."""

    limits: dict[str, LimitEntry] = field(default_factory=dict)
    breakers: dict[str, BreakerPolicy] = field(default_factory=dict)

    def limit(self, key: str) -> LimitEntry | None:
        """The entry for ``agent:NAME``, ``service:NAME``, ``model:P:M`` or ``model:P``; for a
        tenant, its own or else ``tenant:default``."""
        found = self.limits.get(key)
        if found is None and key.startswith("tenant:"):
            return self.limits.get("tenant:default")
        return found

    def breaker(self, name: str) -> BreakerPolicy | None:
        """The breaker policy of ``service:NAME`` or ``provider:NAME``, or the default one."""
        return self.breakers.get(name) or self.breakers.get("default")

    def made_by_default(self, name: str) -> bool:
        """Whether ``name``'s breaker is one ``default`` makes (the file names it not), and
        so takes one of the ``max_breakers`` places."""
        return (
            name not in self.breakers
            and "default" in self.breakers
            and name.partition(":")[2] != OVERFLOW
        )

    def breaker_names(self) -> list[str]:
        """The breakers named in the file (``default`` stands for all the others)."""
        return sorted(name for name in self.breakers if name != "default")


EMPTY = Policy()
_SETTING = "HIVE_LIMITS_FILE"


def parse_policy(text: str, source: str) -> Policy:
    """Validate a limits file's text. Raises :class:`LimitsFileError` with every problem."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LimitsFileError([f"{source}{line}: not valid YAML: {problem}"]) from None
    if raw is None:
        return EMPTY
    if not isinstance(raw, dict):
        raise LimitsFileError([f"{source}: must be a mapping with `limits:` and `breakers:`"])
    problems: list[str] = []
    for section, pattern, shape in (
        ("limits", _KEY, "agent:NAME, tenant:NAME, service:NAME, model:PROVIDER[:MODEL]"),
        ("breakers", _BREAKER, "service:NAME, provider:NAME or default"),
    ):
        entries = raw.get(section)
        if isinstance(entries, dict):
            for key in entries:
                if not isinstance(key, str) or not pattern.match(key):
                    problems.append(f"{source}: {section}.{key}: a key must be {shape}")
    try:
        parsed = _PolicyFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(f"{source}: {_where(e['loc'])}: {_message(e)}" for e in exc.errors())
        parsed = None
    if parsed is not None:
        for key, entry in parsed.limits.items():
            if entry.tokens_per_minute is not None and not key.startswith("model:"):
                problems.append(
                    f"{source}: limits.{key}.tokens_per_minute: only model: entries count tokens"
                )
            if entry.rate is None and entry.tokens_per_minute is None and not entry.concurrency:
                problems.append(
                    f"{source}: limits.{key}: sets no limit (rate, tokens_per_minute or "
                    "concurrency)"
                )
        for key, breaker in parsed.breakers.items():
            if key != "default" and "max_breakers" in breaker.model_fields_set:
                problems.append(
                    f"{source}: breakers.{key}.max_breakers: only default makes breakers"
                )
    if problems:
        raise LimitsFileError(problems)
    assert parsed is not None
    return Policy(dict(parsed.limits), dict(parsed.breakers))


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top)"


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def load_policy(path: Path) -> Policy:
    """Read and validate the limits file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LimitsFileError([f"{_SETTING}: cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise LimitsFileError(
            [f"{_SETTING}: cannot read {path}: not UTF-8 text (byte {exc.start})"]
        ) from None
    return parse_policy(text, f"{_SETTING}: {path}")


class _Cache:
    """The process's policy, read again when the file's name, size or mtime change. A file
    that turns invalid while workers run is reported and the last good policy kept: a typo
    should not lift every limit at once (a worker refuses to start on it, see preflight)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: tuple[str, int, int] | None = None
        self._policy = EMPTY

    def get(self) -> Policy:
        path = get_settings().guard.limits_file
        if path is None:
            return EMPTY
        try:
            stat = path.stat()
            seen = (str(path), stat.st_size, stat.st_mtime_ns)
        except OSError:
            seen = (str(path), -1, -1)
        if seen == self._seen:
            return self._policy
        with self._lock:
            if seen != self._seen:
                try:
                    self._policy = load_policy(path)
                except LimitsFileError as exc:
                    logger.error("limits file not (re)loaded, keeping the last good one:\n%s", exc)
                self._seen = seen
        return self._policy


_cache = _Cache()


def current_policy() -> Policy:
    """The limits and breakers this process applies now (:data:`EMPTY` without a file)."""
    return _cache.get()


def check_limits_file() -> Policy:
    """Load ``HIVE_LIMITS_FILE`` now, raising :class:`LimitsFileError` if it is invalid: a
    worker checks it before it starts."""
    path = get_settings().guard.limits_file
    return EMPTY if path is None else load_policy(path)
