"""How the injection rules read a text: as a model reads it, not as its code points spell it.

Two readings, each linear in the text, and a rule matches a text if it matches either:

- the *line* reading (:func:`normalised`): compatibility forms folded (NFKC: fullwidth and
  mathematical letters, ligatures), invisible characters out, and look-alike letters of
  other scripts read as the Latin letters they imitate (Cyrillic i U+0456, Greek o U+03BF:
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


@functools.cache
def _invisible() -> dict[int, str | None]:
    """The format characters (Unicode's ``Cf``: zero-width spaces and joiners, the soft
    hyphen, direction marks) taken out; the tag characters (U+E0020 to U+E007E, invisible
    ASCII a model still reads) made the ASCII they stand for."""
    table: dict[int, str | None] = {
        code: None for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"
    }
    table.update({code: chr(code - 0xE0000) for code in range(0xE0020, 0xE007F)})
    return table


@functools.cache
def _confusables() -> dict[int, str]:
    """Each non-ASCII character whose confusables skeleton is an ASCII letter or digit,
    mapped to it (from ``confusable-homoglyphs``' copy of Unicode's ``confusables.txt``).

    Two adjustments make the skeleton fit rules written in plain words. The skeleton of
    every capital I-like letter (Cyrillic U+0406, Greek U+0399) is ``l``, since ``I`` and
    ``l`` are themselves confusable; a capital reads here as ``I`` (``IGNORE`` spelt with
    U+0406). And a letter whose skeleton is a Latin small capital (Cyrillic te, en, ve:
    U+1D1B, U+029C, U+0299) reads as that letter."""
    data = json.loads(
        resources.files("confusable_homoglyphs")
        .joinpath("confusables.json")
        .read_text(encoding="utf-8")
    )
    table: dict[int, str] = {}
    # The data lists, under each prototype, the characters whose skeleton it is.
    for prototype, sources in data.items():
        if prototype in _ALNUM:
            target = prototype
        elif unicodedata.name(prototype[0], "").startswith(_SMALL_CAPITAL) and len(prototype) == 1:
            target = unicodedata.name(prototype).removeprefix(_SMALL_CAPITAL)
            if target not in _ALNUM:
                continue
        else:
            continue
        for source in sources:
            char = source["c"]
            if len(char) != 1 or char.isascii():
                continue
            table[ord(char)] = "I" if target == "l" and char.isupper() else target
    return table


@functools.cache
def _reading_table() -> dict[int, str | None]:
    """Invisible characters out and confusables folded, in one ``str.translate``."""
    return {**_confusables(), **_invisible()}


def confusable_fold(text: str) -> str:
    """``text`` with look-alike letters of other scripts as the ASCII they imitate."""
    return text.translate(_confusables())


def normalised(text: str) -> str:
    """The line reading: NFKC, invisible characters out, confusables folded. Linear."""
    return unicodedata.normalize("NFKC", text).translate(_reading_table())


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
