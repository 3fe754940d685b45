"""English words for the text agents: one tokeniser and one stop-word list.

``keywords``, ``summarize`` and ``sentiment`` must agree on what a word is, so
they all tokenise here.
"""

from __future__ import annotations

import re

# Letters (any script) with inner apostrophes kept, so "don't" stays one word.
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")

STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are aren't as at
    be because been before being below between both but by
    can can't cannot could couldn't
    did didn't do does doesn't doing don't down during
    each either else ever every few for from further
    had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers
    herself him himself his how how's however
    i i'd i'll i'm i've if in into is isn't it it's its itself
    just let's like may me might more most much must mustn't my myself
    neither no nor not now of off on once one only or other ought our ours ourselves
    out over own
    per quite rather really same shall shan't she she'd she'll she's should shouldn't
    since so some still such
    than that that's the their theirs them themselves then there there's these they
    they'd they'll they're they've this those though through thus to too
    under until up upon us very
    was wasn't we we'd we'll we're we've were weren't what what's when when's where
    where's whether which while who who's whom whose why why's will with within without
    won't would wouldn't yet you you'd you'll you're you've your yours yourself yourselves
    """.split()  # noqa: SIM905 - a word list reads better as text
)
"""Common English function words that carry no topic."""


def tokenize(text: str) -> list[str]:
    """Split text into lowercase words; digits and punctuation are dropped.

    Args:
        text: any text.

    Returns:
        The words in order of appearance.
    """
    return _WORD.findall(text.replace("\u2019", "'").lower())


def content_words(text: str, min_length: int = 3) -> list[str]:
    """The words of ``text`` that may carry its topic: no stop words, none shorter than min_length.

    Args:
        text: any text.
        min_length: the shortest word kept.

    Returns:
        The kept words in order of appearance.
    """
    return [word for word in tokenize(text) if len(word) >= min_length and word not in STOP_WORDS]
