"""The ``sentiment`` agent: lexicon-based polarity with simple, clause-bounded negation."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import Agent, AgentContext, AgentOptions
from hive.agents.builtin.words import tokenize

POSITIVE_WORDS: frozenset[str] = frozenset(
    """
    amazing awesome beautiful best better brilliant calm charming clean clear comfortable
    delight delighted delightful easy effective efficient elegant enjoy enjoyed excellent
    excited exciting fantastic fast favorite fine fortunate friendly fun glad good gorgeous
    grateful great happy helpful impressive incredible joy kind love loved lovely lucky
    marvelous nice perfect pleasant pleased positive recommend reliable satisfied smooth
    splendid stable success successful superb thank thanks useful valuable win wonderful
    """.split()  # noqa: SIM905 - a word list reads better as text
)

NEGATIVE_WORDS: frozenset[str] = frozenset(
    """
    angry annoyed annoying awful bad boring broken buggy confusing crash crashed damaged
    dirty disappointed disappointing disaster dislike error fail failed failure faulty
    frustrated frustrating hate hated horrible hurt poor problem rude sad scary slow sorry
    terrible ugly unfortunate unhappy unreliable unstable upset useless waste worse worst
    wrong
    """.split()  # noqa: SIM905 - a word list reads better as text
)

NEGATORS: frozenset[str] = frozenset(
    "not no never none nobody nothing neither nor without cannot".split()  # noqa: SIM905
)

# A negator flips the next sentiment word within this many words: "not very good".
_NEGATION_WINDOW = 3
# Negation does not reach past a clause: "No, it was great." is positive.
_CLAUSE_BREAK = re.compile(r"[.,;:!?]+")
# A score closer to zero than this is neutral.
NEUTRAL_BAND = 0.05


def _is_negator(word: str) -> bool:
    return word in NEGATORS or word.endswith("n't")


class SentimentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class SentimentOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=-1.0, le=1.0)
    label: Literal["positive", "negative", "neutral"]
    positive: int = Field(ge=0, description="positive words, after negation")
    negative: int = Field(ge=0, description="negative words, after negation")


class SentimentAgent(Agent[SentimentInput, SentimentOutput]):
    """Scores a text from -1 (negative) to 1 (positive) with a built-in word list."""

    name = "sentiment"
    version = "1"
    input_model = SentimentInput
    output_model = SentimentOutput
    options = AgentOptions(timeout=60.0)

    def run(self, data: SentimentInput, ctx: AgentContext) -> SentimentOutput:
        """Count positive and negative words of ``data.text``, a negator flipping the next one.

        A negator reaches at most three words ahead and never past punctuation
        that ends a clause (``.,;:!?``).

        Args:
            data: the text to score.
            ctx: the step this call belongs to.

        Returns:
            ``(positive - negative) / (positive + negative)`` (0 when neither
            occurs), labelled neutral when closer to zero than ``NEUTRAL_BAND``.
        """
        positive = negative = 0
        for clause in _CLAUSE_BREAK.split(data.text):
            clause_positive, clause_negative = _count_clause(clause)
            positive += clause_positive
            negative += clause_negative
        total = positive + negative
        score = round((positive - negative) / total, 4) if total else 0.0
        label: Literal["positive", "negative", "neutral"] = "neutral"
        if score >= NEUTRAL_BAND:
            label = "positive"
        elif score <= -NEUTRAL_BAND:
            label = "negative"
        return SentimentOutput(score=score, label=label, positive=positive, negative=negative)


def _count_clause(clause: str) -> tuple[int, int]:
    """Positive and negative words of one clause, a negator flipping the next one."""
    positive = negative = 0
    words_since_negator: int | None = None
    for word in tokenize(clause):
        if _is_negator(word):
            words_since_negator = 0
            continue
        if words_since_negator is not None:
            words_since_negator += 1
            if words_since_negator > _NEGATION_WINDOW:
                words_since_negator = None
        polarity = (word in POSITIVE_WORDS) - (word in NEGATIVE_WORDS)
        if polarity == 0:
            continue
        if words_since_negator is not None:
            polarity = -polarity
            words_since_negator = None
        if polarity > 0:
            positive += 1
        else:
            negative += 1
    return positive, negative
