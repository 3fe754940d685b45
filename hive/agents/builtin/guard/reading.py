"""How the injection rules read a text: as a model reads it, not as its code points spell it.

Two readings, each linear in the text, and a rule matches a text if it matches either:

- the *line* reading (:func:`normalised`): compatibility forms folded (NFKD: fullwidth and
  mathematical letters, ligatures), invisible characters and combining marks out (accents,
  strokes stacked over letters), and look-alike letters of other scripts read as the Latin
  letters they imitate (Cyrillic i U+0456 and em U+043C, Greek o U+03BF, small capitals:
  Unicode's confusables, :func:`confusable_fold`). Line breaks stay, so rules anchored at
  a line's start (``\\nsystem:``) still see them.
- the *joined* reading (:func:`joined`): the line reading with each run of whitespace read
  as one space, line breaks included, so ``ignore\\nprevious instructions`` (or forty
  spaces between the words) reads as the phrase it is. A break stays a break where the
  text's own structure ends a unit there, so a rule never spans two of them: a blank line
  (a paragraph), a line that ends a sentence (``.``, ``!``, ``?``), a list item's start
  (``- ``, ``2. ``, ``b) ``), and two ``Label: value`` lines in a row (a form's fields).
"""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from importlib import resources

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_SMALL_CAPITAL = "LATIN LETTER SMALL CAPITAL "

# A list item's marker, or a short "Label:" (at most three words) at a line's start. Both
# bounded: each is tried once per line, so the joined reading stays linear.
_ITEM = re.compile(r"(?:[-*+>\u2022\u2023\u25e6\u25aa\u2043\u2013\u2014]|\(?\w{1,3}[.)])\s")
_LABEL = re.compile(r"[^\W\d_][\w'/-]{0,30}(?: [\w'/-]{1,30}){0,2}:(?:\s|$)")
_SENTENCE_END = frozenset(".!?\u2026\u3002")
_MARK_CATEGORIES = frozenset({"Mn", "Me"})
_UNASSIGNED = frozenset({"Cn", "Co", "Cs"})

# Letters whose Unicode skeleton is no ASCII letter (Greek chi's is U+AB53, LATIN SMALL
# LETTER CHI; omega's U+A7B7) but which stand for one in running text, as homoglyph
# generators use them. Written by hand, so kept to what a reader takes for the letter.
_READ_AS_LATIN: dict[int, str] = {
    ord("\u03c7"): "x",  # Greek chi
    ord("\u03c9"): "w",  # Greek omega
    ord("\u03b5"): "e",  # Greek epsilon
    ord("\u043f"): "n",  # Cyrillic pe
    ord("\u044c"): "b",  # Cyrillic soft sign
}


@functools.cache
def _classes() -> tuple[frozenset[str], frozenset[str]]:
    """The format characters (Unicode's ``Cf``: zero-width spaces and joiners, the soft
    hyphen, direction marks), and the combining marks (``Mn``, ``Me``, any non-zero
    combining class, and the two halfwidth kana marks whose NFKD is one).

    The reading takes both out: a reader sees neither, and sees ``ïgnöre`` or a stack of
    strokes over each letter as the letters. The marks go *before* NFKD too, to keep it
    linear: NFKD puts a run of marks in canonical order by insertion sort, so one letter
    under 200,000 marks of alternating classes took CPython 48 s."""
    formats, marks = [], []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if category in _UNASSIGNED:  # no mark, no decomposition: most code points, skipped
            continue
        if category == "Cf":
            formats.append(char)
        elif (
            category in _MARK_CATEGORIES
            or unicodedata.combining(char)
            or (
                unicodedata.decomposition(char)
                and unicodedata.combining(unicodedata.normalize("NFKD", char)[0])
            )
        ):
            marks.append(char)
    return frozenset(formats), frozenset(marks)


@functools.cache
def _unread() -> dict[int, str | None]:
    """Format characters and marks out (:func:`_classes`); the tag characters (U+E0020 to
    U+E007E, invisible ASCII a model still reads) made the ASCII they stand for."""
    formats, marks = _classes()
    table: dict[int, str | None] = dict.fromkeys(map(ord, formats | marks))
    table.update({code: chr(code - 0xE0000) for code in range(0xE0020, 0xE007F)})
    return table


def _latin(key: str, homoglyphs: list[str]) -> str | None:
    """The ASCII letter or digit that ``key`` and its ``homoglyphs`` (one entry of the
    confusables data) all read as, if there is one."""
    if key in _ALNUM:
        return key
    # A letter with a stroke, hook or cedilla (Ø, ł, Kazakh Қ, Greek η as n with a tail).
    if key[0] in _ALNUM and all(unicodedata.combining(c) or unicodedata.category(c) == "Mn"
                                for c in key[1:]):  # fmt: skip
        return key[0]
    # Latin small capitals (ᴋ, ᴍ) and what imitates them (Cyrillic к, м; Greek κ).
    capitals = {
        unicodedata.name(c).removeprefix(_SMALL_CAPITAL)
        for c in (key, *homoglyphs)
        if len(c) == 1 and unicodedata.name(c, "").startswith(_SMALL_CAPITAL)
    }
    capitals &= _ALNUM
    return capitals.pop() if len(capitals) == 1 else None


@functools.cache
def _confusables() -> dict[int, str]:
    """Each non-ASCII letter that imitates an ASCII letter or digit, mapped to it.

    Unicode's ``confusables.txt`` is the source, as ``confusable-homoglyphs`` ships it (a
    JSON of each character's homoglyphs, 900 KB, read once per process; no dependencies;
    3.3.1, January 2024, with a command that refreshes it from Unicode). Weighed against
    it: ``confusables`` and ``homoglyphs`` (the same data, last released 2021 and 2020),
    and transliterators (``anyascii``, ``unidecode``), which would read every Cyrillic and
    Greek letter as Latin (``д`` as ``d``), not only the look-alikes.

    Unicode's skeleton of a letter is not always ASCII, so three readings of the data:
    an entry under an ASCII letter or digit reads as it; one under an ASCII letter with
    combining marks reads as the letter (:func:`_latin`); and one holding a Latin small
    capital reads as that letter (Cyrillic te, em and ka go to ``ᴛ``, ``ʍ`` and ``ĸ``,
    kin of ``ᴛ``, ``ᴍ`` and ``ᴋ``). The skeleton of every capital I-like letter (Cyrillic
    U+0406, Greek U+0399) is ``l``, since ``I`` and ``l`` are themselves confusable; a
    capital reads here as ``I`` (``IGNORE`` spelt with U+0406). :data:`_READ_AS_LATIN`
    adds the few letters whose skeleton is none of these but which read as Latin ones.
    """
    data = json.loads(
        resources.files("confusable_homoglyphs")
        .joinpath("confusables.json")
        .read_text(encoding="utf-8")
    )
    table: dict[int, str] = {}
    found: dict[int, str] = {}  # by the second and third readings: never overrides the first
    for key, entries in data.items():
        homoglyphs = [entry["c"] for entry in entries]
        target = _latin(key, homoglyphs)
        if target is None:
            continue
        into = table if key in _ALNUM else found
        for char in homoglyphs if key in _ALNUM else (key, *homoglyphs):
            if len(char) != 1 or char.isascii():
                continue
            into[ord(char)] = "I" if target == "l" and char.isupper() else target
    for code, target in (*found.items(), *_READ_AS_LATIN.items()):
        table.setdefault(code, target)
    # Small capitals the data leaves out (``ɴ``): by name, as a "small caps" font writes them.
    for code in range(0x10000):
        name = unicodedata.name(chr(code), "")
        if name.startswith(_SMALL_CAPITAL) and name.removeprefix(_SMALL_CAPITAL) in _ALNUM:
            table.setdefault(code, name.removeprefix(_SMALL_CAPITAL))
    return table


@functools.cache
def _reading_table() -> dict[int, str | None]:
    """Invisible characters and marks out and confusables folded, in one ``str.translate``."""
    return {**_confusables(), **_unread()}


def confusable_fold(text: str) -> str:
    """``text`` with look-alike letters of other scripts as the ASCII they imitate."""
    return text.translate(_confusables())


def normalised(text: str) -> str:
    """The line reading: NFKD, invisible characters and marks out, confusables folded.

    Linear: marks are taken out first, so NFKD has no run of them to reorder; what NFKD
    makes (a precomposed letter's marks, a bold kappa's kappa) is then read by one
    ``translate``, the bulk of the cost (about 50 ns a character)."""
    if text.isascii():  # nothing in it to fold or take out
        return text
    table = _reading_table()
    if not _classes()[1].isdisjoint(set(text)):
        text = text.translate(table)
    return unicodedata.normalize("NFKD", text).translate(table)


def joined(reading: str) -> str:
    """The joined reading of a line reading: whitespace runs as one space, line breaks as
    a space unless they end a unit of the text (see the module's docstring). Linear."""
    out: list[str] = []
    previous = ""  # the last line that held anything, its whitespace collapsed
    previous_label = False
    blank = False
    for raw in reading.replace("\u2029", "\n\n").splitlines():
        line = " ".join(raw.split())
        if not line:
            blank = True
            continue
        label = _LABEL.match(line) is not None
        if previous:
            ends_unit = (
                blank
                or previous[-1] in _SENTENCE_END
                or _ITEM.match(line) is not None
                or (label and previous_label)
            )
            out.append("\n" if ends_unit else " ")
        out.append(line)
        previous, previous_label, blank = line, label, False
    return "".join(out)
