"""The frequency-based text agents: ``keywords`` and ``summarize``.

Both count content words (see :mod:`hive.agents.builtin.words`) and break every
tie by a fixed rule, so the same text always gives the same answer.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from hive.agents.base import Agent, AgentContext, AgentOptions
from hive.agents.builtin.pii import PII_KINDS
from hive.agents.builtin.words import content_words

# Placeholders left by pii_redact ("[EMAIL]", or bare "EMAIL") are not topics.
_PLACEHOLDER = re.compile(r"\[?\b(?:" + "|".join(PII_KINDS) + r")\b\]?")

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A sentence may end at . ! or ?, with closing quotes or brackets, before whitespace.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")
# Words whose period does not end a sentence: "Dr. Smith", "Smith et al. showed".
_ABBREVIATIONS = frozenset("mr mrs ms dr prof sr jr st vs cf fig approx al".split())  # noqa: SIM905
# An initial ("J.") or an initialism ("U.S.", "e.g.").
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+")


class Keyword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term: str
    score: float = Field(description="share of the kept words that are this term")


class KeywordsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    top: int = Field(default=10, ge=1, le=100)


class KeywordsOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keywords: list[Keyword]


class KeywordsAgent(Agent[KeywordsInput, KeywordsOutput]):
    """Lists the most frequent content words of a text."""

    name = "keywords"
    version = "1"
    input_model = KeywordsInput
    output_model = KeywordsOutput
    options = AgentOptions(timeout=60.0)

    def run(self, data: KeywordsInput, ctx: AgentContext) -> KeywordsOutput:
        """Rank the content words of ``data.text`` by frequency.

        Args:
            data: the text and how many terms to return.
            ctx: the step this call belongs to.

        Returns:
            Up to ``data.top`` terms, most frequent first, ties in alphabetical order.
        """
        words = content_words(_PLACEHOLDER.sub(" ", data.text))
        counts = Counter(words)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: data.top]
        total = len(words)
        return KeywordsOutput(
            keywords=[Keyword(term=term, score=round(count / total, 4)) for term, count in ranked]
        )


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, each with its whitespace collapsed.

    A blank line always ends a sentence; a period after a title ("Dr."), an
    initial ("J. Smith") or an initialism followed by a lowercase word ("e.g. this")
    does not.

    Args:
        text: any text.

    Returns:
        The non-empty sentences in order.
    """
    # Each sentence as its parts, joined once at the end: "Dr. Dr. Dr. ..." is one
    # sentence of many parts, and growing it part by part would copy it every time.
    sentences: list[list[str]] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        start = len(sentences)
        for part in _SENTENCE_BREAK.split(paragraph):
            part = " ".join(part.split())
            if not part:
                continue
            if len(sentences) > start and _continues(sentences[-1][-1], part):
                sentences[-1].append(part)
            else:
                sentences.append([part])
    return [" ".join(parts) for parts in sentences]


def _continues(previous: str, part: str) -> bool:
    """Whether the sentence stopped at an abbreviation ending ``previous`` (its last part)
    and ``part`` is the rest of it."""
    last = previous.rsplit(" ", 1)[-1].lstrip("(\"'\u201c\u2018")
    if last[:-1].lower() in _ABBREVIATIONS:
        return True
    if not _INITIALS.fullmatch(last) or last == "I.":
        return False
    # "J. Smith": a name follows an initial; after "U.S." or "e.g." a new
    # sentence would start with a capital.
    return part[0].isupper() if len(last) == 2 else not part[0].isupper()


class SummarizeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    sentences: int = Field(default=3, ge=1, le=50)


class SummarizeOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str
    sentences: list[str]


class SummarizeAgent(Agent[SummarizeInput, SummarizeOutput]):
    """Picks the sentences that best carry a text's frequent words, in their original order."""

    name = "summarize"
    version = "1"
    input_model = SummarizeInput
    output_model = SummarizeOutput
    options = AgentOptions(timeout=60.0)

    def run(self, data: SummarizeInput, ctx: AgentContext) -> SummarizeOutput:
        """Summarise ``data.text`` extractively.

        A sentence scores the summed text-wide frequency of its content words
        divided by how many it has, so long sentences win only by being on topic.

        Args:
            data: the text and how many sentences to keep.
            ctx: the step this call belongs to.

        Returns:
            The chosen sentences in the order they appear in the text.
        """
        sentences = split_sentences(data.text)
        # As in keywords, redaction placeholders are not what a text is about.
        per_sentence = [content_words(_PLACEHOLDER.sub(" ", sentence)) for sentence in sentences]
        frequency = Counter(word for words in per_sentence for word in words)
        scores = [
            sum(frequency[word] for word in words) / len(words) if words else 0.0
            for words in per_sentence
        ]
        # Best score first; an earlier sentence wins a tie.
        best = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[: data.sentences]
        chosen = [sentences[i] for i in sorted(best)]
        return SummarizeOutput(summary=" ".join(chosen), sentences=chosen)
