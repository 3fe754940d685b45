"""Screening text: personal data redacted with the ``pii_redact`` agent's detectors, and a
prompt-injection score from the rules (:mod:`hive.agents.builtin.guard.rules`).

Everything here takes time linear in the text: the PII detectors are linear (issue 8), the
rules read the text as a model does (:mod:`~hive.agents.builtin.guard.reading`: NFKD,
invisible characters and marks out, look-alike letters folded, line breaks within a sentence read as
spaces), the rules are RE2, and encoded payloads are bounded (at most :data:`MAX_DECODED` runs of
base64, two levels deep). What it reports never quotes the text: rule ids and categories,
counts, a score.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field

from hive.agents.builtin.guard.reading import joined, normalised
from hive.agents.builtin.guard.rules import Matcher, RuleSet, compile_linear
from hive.agents.builtin.pii import redact

MAX_DECODED = 32
"""Encoded runs decoded per screening, at most: a prompt of base64 costs no more than this."""
_MAX_DEPTH = 2
_READABLE = 0.9  # the share of printable characters that makes decoded bytes text
_ENCODED_RULE = "encoded_payload"

_base64_runs: dict[int, Matcher] = {}


def _runs_of(min_length: int) -> Matcher:
    # RE2 too: a character class repeated is linear either way, but one engine is simpler.
    if min_length not in _base64_runs:
        _base64_runs[min_length] = compile_linear(f"[A-Za-z0-9+/_-]{{{min_length},}}={{0,2}}")
    return _base64_runs[min_length]


@dataclass(frozen=True)
class Injection:
    """How much a text looks like a prompt injection."""

    score: float
    """1 - (1 - s1)(1 - s2)... over the distinct rules matched; 0 when none."""
    rules: list[str] = field(default_factory=list)
    """Ids of the rules matched, in rule order (``encoded_payload`` for readable base64)."""
    categories: list[str] = field(default_factory=list)


def score_injection(texts: Iterable[str], rules: RuleSet) -> Injection:
    """Score ``texts`` together against ``rules``, decoding base64 runs and scanning what
    they hide as well."""
    matched: dict[str, tuple[float, str]] = {}
    budget = [MAX_DECODED]
    for text in texts:
        _scan(text, rules, matched, budget, depth=0)
    remaining = 1.0
    for score, _ in matched.values():
        remaining *= 1.0 - score
    ordered = [r.id for r in rules.rules if r.id in matched]
    if _ENCODED_RULE in matched and _ENCODED_RULE not in ordered:
        ordered.append(_ENCODED_RULE)
    categories = sorted({matched[rule][1] for rule in ordered})
    return Injection(round(1.0 - remaining, 6), ordered, categories)


def _scan(
    text: str,
    rules: RuleSet,
    matched: dict[str, tuple[float, str]],
    budget: list[int],
    depth: int,
) -> None:
    text = normalised(text)
    whole = joined(text)
    readings = (text,) if whole == text else (text, whole)
    for rule in rules.rules:
        if rule.id not in matched and any(rule.matcher.search(r) for r in readings):
            matched[rule.id] = (rule.score, rule.category)
    if depth >= _MAX_DEPTH:
        return
    for run in _runs_of(rules.encoded_min_length).finditer(text):
        if budget[0] <= 0:
            return
        budget[0] -= 1
        decoded = _decoded_text(run.group(0))
        if decoded is None:
            continue
        matched.setdefault(_ENCODED_RULE, (rules.encoded_score, "encoding"))
        _scan(decoded, rules, matched, budget, depth + 1)


def _decoded_text(run: str) -> str | None:
    """The base64 ``run`` decoded, if it is readable text (not an image, not noise)."""
    padded = run.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not text:
        return None
    readable = sum(char.isprintable() or char in "\n\r\t" for char in text)
    return text if readable / len(text) >= _READABLE else None


def redact_pii(text: str, types: Iterable[str]) -> tuple[str, dict[str, int]]:
    """``text`` with the personal data of ``types`` (lower-case kinds: ``email``, ``phone``,
    ``ip``, ``credit_card``, ``ssn``) replaced by ``[KIND]``; and how many of each type."""
    kinds = {t.upper() for t in types}
    if not kinds:
        return text, {}
    redacted, counts = redact(text, kinds)
    return redacted, {kind.lower(): n for kind, n in counts.items() if kind in kinds}
