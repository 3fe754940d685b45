"""The ``pii_redact`` agent: replaces personal data in text with typed placeholders.

Detectors run in a fixed order. Emails go first because they may hold digits;
card numbers and SSNs go before phone numbers so that a long digit run is typed
by its strictest match rather than carved into phone numbers.

The detectors read a folded view of the text (:func:`_view`), as a model or a mail client
reads it: a compatibility form whose NFKC form is ASCII counts as that (the fullwidth
commercial at U+FF20 and the small one U+FE6B as ``@``, fullwidth digits as digits), an
ideographic full stop as the ``.`` it is in a domain name, any dash as ``-``, and invisible
format characters (zero-width spaces, the soft hyphen) are not there. What they find is
replaced in the original text, the folded characters included. Look-alike letters of
other scripts are not folded here (the input guard's rules read those): Cyrillic Ze
(U+0417) is no ``3``, and a Russian text holds no phone number it does not spell in digits.
An address may hold letters, digits and combining marks of any script (RFC 6531), so
``иван@почта.рф`` is one, and so is ``john@example.com`` spelled with a Cyrillic o
(U+043E), whole: no look-alike leaves part of it in the text. In a script written without
spaces, an address ends where the script does: ``メールはtaro@example.jpまで`` keeps its words.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import Agent, AgentContext, AgentOptions

PII_KINDS: tuple[str, ...] = ("EMAIL", "PHONE", "IP", "CREDIT_CARD", "SSN")
"""Every kind of data :func:`redact` replaces; the placeholder of a kind is ``[KIND]``."""

# An email is a run of these, an "@" and a domain, read in the class view of
# _email_classes: a letter of any script reads as "a" (or _WIDE, below), a decimal digit as
# "0", a combining mark (which some scripts' letters need: Devanagari's vowel signs) as
# _MARK. As one regex, a search retries the local part from every character of a long run
# that never reaches an "@": quadratic time. _email_spans walks from each "@" instead,
# finding what that regex would find.
_MARK = "\u0300"
# Chinese, Japanese, Korean, Thai, Lao, Khmer and Burmese are written without spaces
# between words, so an address in such a text touches the words around it
# ("メールはtaro@example.jpまで"). Their letters read as _WIDE, and a local part or a domain
# label is letters of one kind, _WIDE or not: a switch between the two ends it. Labels of
# both kinds make one domain ("taro@例え.jp"), but a final label of _WIDE letters follows
# only labels of _WIDE letters or digits ("用户@例子.广告"): in "taro@example.jp。明日", the
# ideographic full stop ends a sentence, not a domain.
_WIDE = "\u4e00"
_EMAIL_LOCAL = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-" + _MARK + _WIDE
)
_NEUTRAL = f"0-9{_MARK}-"  # in a label of either kind
# Labels end where their kind does, never before a letter (a "." is none): atomic.
_WIDE_LABEL = rf"(?>[{_NEUTRAL}]*{_WIDE}[{_WIDE}{_NEUTRAL}]*|[{_NEUTRAL}]+)"
_LABEL = (
    rf"(?>[{_NEUTRAL}]*(?:[A-Za-z][A-Za-z{_NEUTRAL}]*|{_WIDE}[{_WIDE}{_NEUTRAL}]*)|[{_NEUTRAL}]+)"
)
# The final label holds at least two letters of one kind, each with the marks that follow it.
_EMAIL_DOMAIN = re.compile(
    rf"(?:{_LABEL}\.)+(?:[A-Za-z]{_MARK}*){{2,}}|(?:{_WIDE_LABEL}\.)+(?:{_WIDE}{_MARK}*){{2,}}"
)

# The blocks of the scripts written without spaces between words (their letters read as
# _WIDE): Thai, Lao, Myanmar, Hangul Jamo, Khmer, CJK punctuation-block letters (the
# iteration mark), Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, Katakana
# phonetic extensions, CJK Unified Ideographs (extension A, the main block), Myanmar and
# Hangul extensions, Hangul syllables, CJK compatibility ideographs, halfwidth Katakana and
# Hangul, and the supplementary ideographic planes' extensions B to I.
_WIDE_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1100, 0x11FF),
    (0x1780, 0x17FF),
    (0x19E0, 0x19FF),
    (0x3005, 0x3007),
    (0x3040, 0x312F),
    (0x3130, 0x318F),
    (0x31A0, 0x31BF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xA960, 0xA97F),
    (0xA9E0, 0xA9FF),
    (0xAA60, 0xAA7F),
    (0xAC00, 0xD7FF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFFDC),
    (0x20000, 0x323AF),
)

# 13-19 digits, single spaces or dashes allowed between them; the lookarounds keep
# the match from starting or ending inside a longer run of digits, or after the "+"
# of an international phone number.
_CREDIT_CARD = re.compile(r"(?<![\d+])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)")

# Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?<!\d)(?<!\d-)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!-?\d)")

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not glued to a word or to more dotted numbers: "v1.2.3.4" and "1.2.3.4.5" are versions.
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")

_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        (?:\+?1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}   # North American
      | \+\d{1,3}(?:[ .-]?\(0\)[ .-]?|[ .-])\d{1,10}(?:[ .-]\d{1,10}){0,4}   # +44 (0)20 7946 0958
      | \+\d{7,15}                                                 # E.164, no separators
    )
    (?!\w)(?![.-]?\d)
    """,
    re.VERBOSE,
)


@functools.lru_cache(maxsize=4096)
def _email_class(char: str) -> str:
    """How the email detector reads a non-ASCII character: a letter as _WIDE in a script
    written without spaces, else as "a", a decimal digit as "0", a combining mark as _MARK,
    anything else as itself (which no address holds)."""
    if char.isalpha():
        code = ord(char)
        return _WIDE if any(low <= code <= high for low, high in _WIDE_BLOCKS) else "a"
    if char.isdecimal():
        return "0"
    return _MARK if unicodedata.category(char).startswith("M") else char


def _email_classes(text: str) -> str:
    """``text`` with each non-ASCII character replaced by its :func:`_email_class`: one
    character for one, so a span of it is the same span of ``text``."""
    if text.isascii():
        return text
    table = {ord(char): _email_class(char) for char in set(text) if not char.isascii()}
    return text.translate(table)


def _email_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where ``[<letter><digit>._%+-]+@<_EMAIL_DOMAIN>`` matches in :func:`_email_classes`
    of ``text``, as ``re.finditer`` would find it, its letters of one kind (_WIDE or not)
    and the marks of a letter of the other kind left out: on ASCII,
    ``[A-Za-z0-9._%+-]+@...``.

    Linear: the local parts scanned back from each "@" and the domains scanned forward
    from it lie between two "@"s, so no character is looked at more than a few times.
    """
    if "@" not in text:
        return
    text = _email_classes(text)
    searched_from = 0
    at = text.find("@")
    while at != -1:
        start = at
        wide = None  # whether the local part's letters are _WIDE, once one is seen
        while start > searched_from and text[start - 1] in _EMAIL_LOCAL:
            char = text[start - 1]
            if char.isalpha():
                if wide is None:
                    wide = char == _WIDE
                elif wide != (char == _WIDE):
                    while text[start] == _MARK:  # the marks of that letter
                        start += 1
                    break
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1) if start < at else None
        if domain is None:
            at = text.find("@", at + 1)
            continue
        yield start, domain.end()
        searched_from = domain.end()
        at = text.find("@", searched_from)


# The label separators of an internationalised domain name (RFC 3490, 3.1): a resolver
# reads "example\u3002com" as "example.com". NFKC makes only the fullwidth one a ".".
_DOTS = frozenset("\u3002\uff0e\uff61")


@functools.lru_cache(maxsize=4096)
def _folded(char: str) -> str:
    """What the detectors read for one non-ASCII character: nothing for an invisible one,
    its NFKC form when that is ASCII, a "." for an ideographic full stop, a "-" for any
    dash (Unicode's ``Pd``: the en dash, the non-breaking hyphen), else the character."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    form = unicodedata.normalize("NFKC", char)
    if form.isascii():
        return form
    if char in _DOTS:
        return "."
    return "-" if category == "Pd" else char


class _View:
    """A text as the detectors read it, and how to find a span of it in the text."""

    def __init__(self, original: str, text: str, table: dict[int, str], uneven: str) -> None:
        self.text = text
        self._original = original
        self._table = table
        self._uneven = uneven
        self._anchors: list[tuple[int, int, int]] | None = None
        self._at: list[int] = []

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The text's span that reads as the view's ``[start, end)``."""
        if not self._uneven:
            return start, end
        return self._where(start), self._where(end - 1) + 1

    def _where(self, index: int) -> int:
        if self._anchors is None:
            self._anchors = self._anchored()
            self._at = [view_at for _, view_at, _ in self._anchors]
        found = bisect.bisect_right(self._at, index) - 1
        if found < 0:
            return index
        text_at, view_at, length = self._anchors[found]
        if index < view_at + length:
            return text_at
        return text_at + 1 + index - (view_at + length)

    def _anchored(self) -> list[tuple[int, int, int]]:
        """(where in the text, where in the view, length in the view) of each character
        folded to none or to several, in order: only these move the offsets after them.
        Made once, when a first span is found."""
        anchors = []
        shift = 0  # the view's offset minus the text's, so far
        uneven = re.compile(f"[{re.escape(self._uneven)}]")
        for found in uneven.finditer(self._original):
            at = found.start()
            length = len(self._table[ord(self._original[at])])
            anchors.append((at, at + shift, length))
            shift += length - 1
        return anchors


def _view(text: str) -> _View:
    """``text`` folded for the detectors. Linear: one pass for the distinct characters and
    one ``str.translate``; where offsets move (a character folded to none or to several: an
    invisible one, a ligature) is found only once a span is."""
    if text.isascii():
        return _View(text, text, {}, "")
    table: dict[int, str] = {}
    uneven: list[str] = []
    for char in set(text):
        if char.isascii():
            continue
        folded = _folded(char)
        if folded != char:
            table[ord(char)] = folded
            if len(folded) != 1:
                uneven.append(char)
    if not table:
        return _View(text, text, {}, "")
    return _View(text, text.translate(table), table, "".join(sorted(uneven)))


def _regex_spans(pattern: re.Pattern[str]) -> Callable[[str], Iterator[tuple[int, int]]]:
    def spans(text: str) -> Iterator[tuple[int, int]]:
        return (match.span() for match in pattern.finditer(text))

    return spans


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum that card numbers carry.

    Args:
        digits: the number, digits only.

    Returns:
        True when the checksum holds.
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card(match: str) -> bool:
    # Issuer numbers never start with 0; "0000 0000 0000 0000" passes Luhn but is filler.
    digits = re.sub(r"\D", "", match)
    return not digits.startswith("0") and luhn_valid(digits)


def _is_phone(match: str) -> bool:
    # The international forms are loose; a real number has 7 to 15 digits (E.164).
    return 7 <= sum(char.isdigit() for char in match) <= 15


def _always(_: str) -> bool:
    return True


@dataclass(frozen=True)
class _Detector:
    kind: str
    spans: Callable[[str], Iterator[tuple[int, int]]]
    """Where candidates are, left to right, never overlapping."""
    accept: Callable[[str], bool] = _always


_DETECTORS: tuple[_Detector, ...] = (
    _Detector("EMAIL", _email_spans),
    _Detector("CREDIT_CARD", _regex_spans(_CREDIT_CARD), _is_card),
    _Detector("SSN", _regex_spans(_SSN)),
    _Detector("IP", _regex_spans(_IPV4)),
    _Detector("PHONE", _regex_spans(_PHONE), _is_phone),
)


def redact(text: str, kinds: Collection[str] = PII_KINDS) -> tuple[str, dict[str, int]]:
    """Replace emails, card numbers, SSNs, IPv4 addresses and phone numbers with placeholders.

    Args:
        text: any text.
        kinds: which of :data:`PII_KINDS` to replace (default: all of them).

    Returns:
        The redacted text and how many of each kind were replaced (every kind
        of :data:`PII_KINDS` is present, zero included).
    """
    counts = dict.fromkeys(PII_KINDS, 0)
    for detector in _DETECTORS:
        if detector.kind not in kinds:
            continue
        view = _view(text)
        pieces: list[str] = []
        copied = 0
        for found in detector.spans(view.text):
            if not detector.accept(view.text[found[0] : found[1]]):
                continue
            start, end = view.span(*found)
            start = max(start, copied)  # a ligature read partly by the span before
            pieces += (text[copied:start], f"[{detector.kind}]")
            counts[detector.kind] += 1
            copied = end
        pieces.append(text[copied:])
        text = "".join(pieces)
    return text, counts


class PiiRedactInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class PiiRedactOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    counts: dict[str, int] = Field(description="replacements per kind, zero included")


class PiiRedactAgent(Agent[PiiRedactInput, PiiRedactOutput]):
    """Replaces emails, phone numbers, IPv4 addresses, card numbers and SSNs with placeholders."""

    name = "pii_redact"
    version = "1"
    input_model = PiiRedactInput
    output_model = PiiRedactOutput
    options = AgentOptions(timeout=60.0)

    def run(self, data: PiiRedactInput, ctx: AgentContext) -> PiiRedactOutput:
        """Redact ``data.text``.

        Args:
            data: the text to redact.
            ctx: the step this call belongs to.

        Returns:
            The redacted text and the count of each kind replaced.
        """
        text, counts = redact(data.text)
        ctx.logger.debug("redacted %s", counts)
        return PiiRedactOutput(text=text, counts=counts)
