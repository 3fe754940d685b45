"""The text agents take linear time: 200,000-character inputs crafted against their regexes.

``doc-triage`` accepts texts this long, and a backtracking pattern turns one into minutes
of a worker's time. The timeouts below are generous bounds, not speed measurements: the
quadratic code these tests guard against takes minutes on the same inputs.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from hive.agents import AgentContext
from hive.agents.builtin import KeywordsAgent, PiiRedactAgent, SentimentAgent, SummarizeAgent
from hive.agents.builtin.pii import _email_spans, _folded, _view
from hive.agents.builtin.text import split_sentences

SIZE = 200_000

# The email pattern as one regex: the behaviour _email_spans must keep, checked on short texts.
EMAIL_REGEX = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def repeated(unit: str, size: int = SIZE) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def halves(left: str, middle: str, right: str) -> str:
    return repeated(left, SIZE // 2) + middle + repeated(right, SIZE // 2 - len(middle))


ADVERSARIAL: dict[str, str] = {
    "local-part-without-at": repeated("a"),
    "local-part-then-bad-domain": halves("a", "@", "a"),
    "local-part-then-single-letter-labels": halves("a.", "@", "a."),
    "dashes-then-at": halves("a-", "@", "1-"),
    "many-ats": repeated("a@"),
    "dotted-digits": repeated("1."),
    "digit-runs-with-spaces": repeated("1 "),
    "digit-runs-with-dashes": repeated("1-"),
    "plus-signs": repeated("+1 "),
    "trunk-prefixes": repeated("+44 (0)"),
    "abbreviations": repeated("Dr. "),
    "initials": repeated("J. "),
    "initialisms": repeated("U.S. "),
    "blank-lines": repeated("x.\n \n"),
    "apostrophes": repeated("a'"),
    "clause-marks": repeated("not,"),
    # Compatibility forms: the detectors read a folded view, mapped back to the text.
    "fullwidth-ats": repeated("a\uff20"),
    "fullwidth-local-part-then-at": halves("\uff41", "\uff20", "\uff41."),
    "fullwidth-digits": repeated("\uff11 "),
    "zero-width-between-digits": repeated("1\u200b"),
    "ligatures": repeated("\ufb01"),
    "ligature-emails": repeated("\ufb01@b.io\u200b "),
    "cjk": repeated("\u6f22\u5b57"),
    "ideographic-dots": repeated("1\u3002"),
    "ideographic-dot-domains": halves("a", "\uff20", "a\u3002"),
    "en-dashes-between-digits": repeated("1\u2013"),
    "unicode-dashes-then-at": halves("a\u2011", "@", "1\u2013"),
    # Letters, digits and marks of other scripts are an address's characters too.
    "cyrillic-local-part-without-at": repeated("\u044f"),
    "cyrillic-local-part-then-bad-domain": halves("\u044f", "@", "\u044f"),
    "cyrillic-single-letter-labels": halves("\u044f.", "@", "\u044f."),
    "many-ats-between-cyrillic": repeated("\u0438\u0432@"),
    "many-ats-between-cjk": repeated("\u7528@"),
    "ats-and-ideographic-dots-between-cjk": repeated("\u7528@\u4f8b\u3002"),
    "homoglyph-ats": repeated("j\u043e@"),
    "marks-then-at": halves("e\u0301", "@", "e\u0301"),
    "mark-runs-after-a-dot": halves("\u044f", "@", "\u044f.\u044f" + "\u0301" * 1000),
    "letters-with-marks-as-labels": halves("\u044f\u0301", "@", "\u044f\u0301."),
    "arabic-indic-digit-labels": halves("\u0661", "@", "\u0661."),
    "fullwidth-ats-between-cyrillic": halves("\u044f", "\uff20", "\u044f\u3002"),
    # Letters of scripts without spaces end a local part or a label of other letters.
    "kana-and-ascii-runs-around-ats": repeated("\u304b\u304bab@ab\u304b\u304b."),
    "kana-and-ascii-labels": halves("a\u304b", "@", "a.\u304b.1."),
    "wide-labels-then-a-latin-one": halves("\u5b57", "@", "\u5b57\u3002") + "a",
}

AGENTS: dict[str, Any] = {
    "pii_redact": PiiRedactAgent,
    "keywords": KeywordsAgent,
    "summarize": SummarizeAgent,
    "sentiment": SentimentAgent,
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
@pytest.mark.parametrize("agent", AGENTS.values(), ids=AGENTS.keys())
def test_text_agent_finishes_a_200k_adversarial_input_in_linear_time(agent: Any, text: str) -> None:
    ctx = AgentContext(run_id="r", step_id="s", attempt=1)
    agent().execute({"text": text}, ctx)


@pytest.mark.timeout(10)
def test_pii_redact_finds_an_email_after_200k_characters_of_local_part() -> None:
    text = repeated("a") + "@mail.example.com"
    result = PiiRedactAgent().execute({"text": text}, AgentContext("r", "s", 1))
    assert result["text"] == "[EMAIL]"
    assert result["counts"]["EMAIL"] == 1


@pytest.mark.timeout(10)
def test_pii_redact_finds_a_fullwidth_email_after_200k_characters_of_fullwidth_text() -> None:
    text = repeated("\uff41") + "\uff20mail.example.com"
    result = PiiRedactAgent().execute({"text": text}, AgentContext("r", "s", 1))
    assert result["text"] == "[EMAIL]"


@pytest.mark.timeout(10)
def test_pii_redact_finds_a_cyrillic_email_after_200k_characters_of_cyrillic_text() -> None:
    text = repeated("\u044f") + "@\u043f\u043e\u0447\u0442\u0430.\u0440\u0444"
    result = PiiRedactAgent().execute({"text": text}, AgentContext("r", "s", 1))
    assert result["text"] == "[EMAIL]"


def test_pii_view_maps_each_span_back_to_the_characters_read() -> None:
    rng = random.Random(8)
    alphabet = [
        "a",
        "@",
        ".",
        "1",
        " ",
        "\uff20",
        "\uff41",
        "\ufb01",
        "\u200b",
        "\u00e9",
        "\u3002",
        "\u2013",
    ]
    for _ in range(2_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        view = _view(text)
        for start in range(len(view.text)):
            for end in range(start + 1, len(view.text) + 1):
                first, last = view.span(start, end)
                # The text's span reads as the view's, give or take a ligature cut in two.
                read = "".join(map(_folded, text[first:last]))
                assert view.text[start:end] in read, (text, start, end)


def test_email_spans_match_what_the_single_regex_finds() -> None:
    # Every character class the pattern distinguishes, in random short texts.
    rng = random.Random(8)
    alphabet = "ab1.@-_ %+Z!"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        expected = [match.span() for match in EMAIL_REGEX.finditer(text)]
        assert list(_email_spans(text)) == expected, text


# The same pattern over letters, digits and marks of any script, spelled out for a sample
# of them: Latin, Cyrillic, accented; Han, Hiragana, Thai (scripts without spaces, _W); ASCII
# and Arabic-Indic digits; combining marks. A local part or a label is letters of one kind,
# and a local part does not start with the marks of a letter of the other kind.
_L, _W, _D, _M = "A-Za-z\u044f\u00e9", "\u5b57\u304b\u0e01", "0-9\u0663", "\u0301\u093e"
_N = f"{_D}{_M}"
_LOCAL = (
    rf"(?:(?![{_M}])|(?<![{_W}{_M}]))[{_L}{_N}._%+-]+"
    rf"|(?:(?![{_M}])|(?<![{_L}{_M}]))[{_W}{_N}._%+-]+"
)
_LABEL_W = rf"[{_N}-]*[{_W}][{_W}{_N}-]*|[{_N}-]+"
_LABEL = rf"[{_N}-]*[{_L}][{_L}{_N}-]*|{_LABEL_W}"
MIXED_EMAIL_REGEX = re.compile(
    rf"(?:{_LOCAL})@(?:(?:(?:{_LABEL})\.)+(?:[{_L}][{_M}]*){{2,}}"
    rf"|(?:(?:{_LABEL_W})\.)+(?:[{_W}][{_M}]*){{2,}})"
)


def test_email_spans_match_the_single_regex_over_letters_of_any_script() -> None:
    rng = random.Random(8)
    alphabet = "a\u044f\u00e9\u5b57\u304b\u0e011\u0663\u0301\u093e.@-_ %+\u00ab"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        expected = [match.span() for match in MIXED_EMAIL_REGEX.finditer(text)]
        assert list(_email_spans(text)) == expected, text


@pytest.mark.parametrize(
    "text",
    [
        "a@b.com.x@c.com",  # a match may start right where the previous one ended
        "a@b.com-x@c.com",
        "x@@a.com",
        "foo!bar@x.org",
        "@a.com",
        "a@b.c",
        "a@b.co1",
    ],
)
def test_email_spans_keep_the_regex_edge_cases(text: str) -> None:
    assert list(_email_spans(text)) == [m.span() for m in EMAIL_REGEX.finditer(text)]


@pytest.mark.timeout(10)
def test_a_sentence_of_200k_characters_of_abbreviations_stays_one_sentence() -> None:
    sentences = split_sentences(repeated("Dr. "))
    assert len(sentences) == 1
    assert len(sentences[0]) == SIZE - 1
