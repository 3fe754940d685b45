"""The prompt-injection rules: the shipped file, plus the one ``HIVE_INPUT_GUARD_RULES_FILE``
names, validated whole when loaded (``hive worker`` loads them before it starts: a bad
rule stops it, naming the file and the rule) and read again when a file changes.

Patterns are RE2 (google-re2): a match takes time linear in the text whatever the
pattern, so a user's rule cannot make a prompt take exponential time, as a backtracking
``re`` pattern such as ``(a+)+$`` would. RE2 has no backreferences or lookarounds; a
pattern using them is refused at load.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, cast

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hive.errors import SettingsError
from hive.settings import get_settings

_VARIABLE = "HIVE_INPUT_GUARD_RULES_FILE"
_RULE_ID = re.compile(r"[a-z0-9_]{1,64}")


class Matcher(Protocol):
    """What a compiled RE2 pattern offers here (google-re2 ships no types)."""

    def search(self, text: str) -> Any: ...

    def finditer(self, text: str) -> Any: ...


def compile_linear(pattern: str) -> Matcher:
    """``pattern`` compiled by RE2, case-insensitive.

    Raises:
        ValueError: RE2 cannot compile it (a syntax error, a backreference, a lookaround).
    """
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would write its own line to stderr besides ours
    try:
        return cast(Matcher, re2.compile(pattern, options=options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(f"not an RE2 pattern: {text}") from None


class RuleDocument(BaseModel):
    """One rule as written in a rules file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    category: str = Field(min_length=1, max_length=64)
    score: float = Field(ge=0, le=1, description="how sure a match is an attack")
    pattern: str = Field(min_length=1, max_length=4000)
    description: str | None = None
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _rule_id(cls, value: str) -> str:
        if not _RULE_ID.fullmatch(value):
            raise ValueError("must be 1 to 64 lower-case letters, digits or _")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_linear(value)
        return value


class EncodedDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    min_length: int = Field(default=24, ge=8, le=4096)
    score: float = Field(default=0.3, ge=0, le=1)


class RulesDocument(BaseModel):
    """A rules file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: int = Field(default=1, ge=1, le=1)
    encoded: EncodedDocument | None = None
    rules: list[RuleDocument] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[RuleDocument]) -> list[RuleDocument]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is given twice")
            seen.add(rule.id)
        return rules


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    score: float
    matcher: Matcher


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, compiled."""

    rules: tuple[Rule, ...]
    encoded_min_length: int
    encoded_score: float


def read_rules(path: Path, variable: str = _VARIABLE) -> RulesDocument:
    """Read and validate one rules file.

    Raises:
        SettingsError: it cannot be read, is not YAML, or does not fit; names ``variable``,
            the file, and each rule and field at fault.
    """
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(variable, f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(variable, f"{path}: not YAML: {exc}") from None
    try:
        return RulesDocument.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        problems = [(variable, f"{path}: {_where(raw, e['loc'])}: {_message(e)}")
                    for e in exc.errors()]  # fmt: skip
        raise SettingsError.of(problems) from None


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """``rules.3.pattern`` as ``rule 'name'.pattern`` when the rule has an id to name."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(raw, dict):
        items = raw.get("rules")
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            return ".".join([f"rule {item['id']!r}", *parts[2:]])
    return ".".join(parts) or "top"


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def _shipped() -> Path:
    return Path(str(resources.files("hive.agents.builtin.guard") / "injection_rules.yaml"))


def merge(shipped: RulesDocument, extra: RulesDocument | None) -> RuleSet:
    """The shipped rules with ``extra``'s added; an extra rule with a shipped id replaces
    it, and ``enabled: false`` drops it. ``extra``'s ``encoded`` replaces the shipped one."""
    by_id = {rule.id: rule for rule in shipped.rules}
    encoded = shipped.encoded or EncodedDocument()
    if extra is not None:
        by_id.update({rule.id: rule for rule in extra.rules})
        encoded = extra.encoded or encoded
    rules = tuple(
        Rule(r.id, r.category, r.score, compile_linear(r.pattern))
        for r in by_id.values()
        if r.enabled
    )
    return RuleSet(rules, encoded.min_length, encoded.score)


_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], RuleSet] | None = None


def _stamp(path: Path | None) -> tuple[Any, ...]:
    if path is None:
        return (None,)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SettingsError(_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    return (str(path), stat.st_mtime_ns, stat.st_size)


def rule_set() -> RuleSet:
    """The rules in force: the shipped file and ``HIVE_INPUT_GUARD_RULES_FILE``'s, read
    again when that file changes.

    Raises:
        SettingsError: the extra file is missing or malformed (names the rule at fault).
    """
    global _cached
    extra_path = get_settings().input_guard.rules_file
    key = _stamp(extra_path)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
    shipped = read_rules(_shipped(), "the shipped injection rules")
    extra = read_rules(extra_path) if extra_path is not None else None
    rules = merge(shipped, extra)
    with _lock:
        _cached = (key, rules)
    return rules
