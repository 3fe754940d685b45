"""The built-in agents, the Agent contract's validation and the registry; no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import hive.agents
import hive.agents.builtin
from hive.agents import (
    BUILTIN_AGENTS,
    Agent,
    AgentContext,
    AgentOptions,
    AgentRegistry,
    Resource,
    default_registry,
)
from hive.agents.builtin import (
    EchoAgent,
    FailAgent,
    KeywordsAgent,
    MergeAgent,
    PiiRedactAgent,
    SentimentAgent,
    SleepAgent,
    SummarizeAgent,
)
from hive.agents.builtin.pii import PII_KINDS, luhn_valid
from hive.errors import InvalidAgentInput, InvalidAgentOutput, PermanentError, RetryableError

BUILTIN_NAMES = {
    "echo",
    "pii_redact",
    "keywords",
    "summarize",
    "sentiment",
    "merge",
    "http",
    "sleep",
    "fail",
    "llm",
    "guard",
}


def make_ctx(**overrides: Any) -> AgentContext:
    fields: dict[str, Any] = {"run_id": "r", "step_id": "s", "attempt": 1, **overrides}
    return AgentContext(**fields)


def redact(text: str) -> dict[str, Any]:
    return PiiRedactAgent().execute({"text": text}, make_ctx())


def keywords(text: str, top: int = 10) -> list[dict[str, Any]]:
    output = KeywordsAgent().execute({"text": text, "top": top}, make_ctx())
    terms: list[dict[str, Any]] = output["keywords"]
    return terms


def sentiment(text: str) -> dict[str, Any]:
    return SentimentAgent().execute({"text": text}, make_ctx())


# --- package surface and registry ---------------------------------------------------------


def test_hive_agents_all_lists_exactly_the_public_names() -> None:
    assert sorted(hive.agents.__all__) == sorted(
        [
            "Agent",
            "AgentContext",
            "AgentOptions",
            "AgentRegistry",
            "default_registry",
            "BUILTIN_AGENTS",
            "CallGuard",
            "CallTicket",
            "Resource",
            "ServiceLookup",
        ]
    )
    for name in hive.agents.__all__:
        assert hasattr(hive.agents, name)


def test_builtin_all_lists_the_agent_list_and_every_agent_class() -> None:
    exported = set(hive.agents.builtin.__all__)
    assert exported == {"BUILTIN_AGENTS"} | {agent.__name__ for agent in BUILTIN_AGENTS}
    for name in exported:
        assert hasattr(hive.agents.builtin, name)


def test_registry_discovery_finds_every_builtin() -> None:
    registry = AgentRegistry.discover()
    assert len(BUILTIN_AGENTS) == len(BUILTIN_NAMES)
    assert set(registry.names()) >= BUILTIN_NAMES
    for agent in BUILTIN_AGENTS:
        assert registry.get(agent.name) is agent


def test_default_registry_is_discovered_once_and_holds_the_builtins() -> None:
    assert default_registry() is default_registry()
    assert set(default_registry().names()) >= BUILTIN_NAMES


class _NotAnAgent:
    name = "impostor"


class _NamelessAgent(Agent):  # type: ignore[type-arg]
    input_model = EchoAgent.input_model
    output_model = EchoAgent.output_model


@pytest.mark.parametrize(
    ("candidate", "problem"),
    [
        (_NotAnAgent, "is not a subclass of hive.agents.Agent"),
        (len, "is not a subclass of hive.agents.Agent"),
        (_NamelessAgent, "agent class _NamelessAgent: name must be a non-empty string"),
    ],
    ids=["class", "function", "nameless"],
)
def test_registry_refuses_what_is_not_a_complete_agent_class(
    candidate: object, problem: str
) -> None:
    with pytest.raises(TypeError, match=re.escape(problem)):
        AgentRegistry().register(candidate)


class _FakeEntryPoint:
    def __init__(self, name: str, value: str, loaded: object = None) -> None:
        self.name = name
        self.value = value
        self._loaded = loaded

    def load(self) -> object:
        if self._loaded is None:
            raise ModuleNotFoundError(f"No module named {self.value.split(':')[0]!r}")
        return self._loaded


class _PluginAgent(EchoAgent):
    name = "plugin_echo"


def test_registry_discovery_skips_broken_entry_points_with_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    found = [
        _FakeEntryPoint("missing", "gone.module:Agent"),
        _FakeEntryPoint("impostor", "plugin:NotAnAgent", _NotAnAgent),
        _FakeEntryPoint("echo", "plugin:Echo", type("Echo", (EchoAgent,), {})),
        _FakeEntryPoint("plugin_echo", "plugin:PluginAgent", _PluginAgent),
    ]
    monkeypatch.setattr(
        "hive.agents.registry.entry_points",
        lambda group: found if group == "hive.agents" else [],
    )
    with caplog.at_level("INFO", logger="hive.agents.registry"):
        registry = AgentRegistry.discover()
    assert registry.get("plugin_echo") is _PluginAgent
    assert registry.get("echo") is EchoAgent
    assert "impostor" not in registry
    assert registry.broken == {
        "missing": "gone.module:Agent: ModuleNotFoundError: No module named 'gone.module'",
        "impostor": f"plugin:NotAnAgent: TypeError: {_NotAnAgent!r} is not a subclass of "
        "hive.agents.Agent",
        "echo": "plugin:Echo: ValueError: two agents are named 'echo': "
        f"{EchoAgent!r} and {found[2].load()!r}",
    }
    assert [record.getMessage() for record in caplog.records] == [
        f"agent entry point {name!r} not loaded ({problem})"
        for name, problem in registry.broken.items()
    ]
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.parametrize("agent", BUILTIN_AGENTS, ids=lambda agent: agent.name)
def test_every_builtin_declares_the_agent_contract(agent: type[Agent]) -> None:  # type: ignore[type-arg]
    assert issubclass(agent, Agent)
    assert agent.name in BUILTIN_NAMES
    assert isinstance(agent.version, str)
    assert isinstance(agent.options, AgentOptions)
    assert agent.__doc__ and "\n" not in agent.__doc__.strip()
    assert issubclass(agent.input_model, BaseModel)
    assert issubclass(agent.output_model, BaseModel)
    assert agent.input_model.__name__.endswith("Input")
    assert agent.output_model.__name__.endswith("Output")
    expected_extra = "allow" if agent is MergeAgent else "forbid"
    assert agent.input_model.model_config.get("extra") == expected_extra


def test_importing_the_agents_pulls_in_neither_celery_nor_the_database() -> None:
    code = (
        "import sys, hive.agents; "
        "bad = [m for m in ('celery', 'sqlalchemy', 'hive.db', 'hive.tasks') if m in sys.modules]; "
        "sys.exit(', '.join(bad) or None)"
    )
    # Run from the directory holding the hive package, so it imports however it is installed.
    package_root = Path(hive.agents.__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=package_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- execute(): validation at the boundary ------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "raw_input", "field"),
    [
        (EchoAgent, {}, "input.text"),
        (EchoAgent, {"text": "hi", "extra": 1}, "input.extra"),
        (KeywordsAgent, {"text": "x", "top": 0}, "input.top"),
        (SummarizeAgent, {"text": "x", "sentences": 51}, "input.sentences"),
        (SleepAgent, {"seconds": -1}, "input.seconds"),
        (FailAgent, {"times": -1}, "input.times"),
        (MergeAgent, {"when": object()}, "input.when"),
    ],
    ids=["missing", "unknown", "top", "sentences", "seconds", "times", "not-json"],
)
def test_execute_rejects_invalid_input_naming_the_field(
    agent: type[Agent],  # type: ignore[type-arg]
    raw_input: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidAgentInput, match=re.escape(field)) as caught:
        agent().execute(raw_input, make_ctx())
    assert isinstance(caught.value, PermanentError)
    assert isinstance(caught.value.__cause__, ValidationError)


def test_execute_rejects_output_that_does_not_fit_the_output_model() -> None:
    class BrokenEcho(EchoAgent):
        def run(self, data: Any, ctx: AgentContext) -> Any:
            return {"text": ["not", "a", "string"]}

    with pytest.raises(InvalidAgentOutput, match=re.escape("output.text")) as caught:
        BrokenEcho().execute({"text": "hi"}, make_ctx())
    assert isinstance(caught.value.__cause__, ValidationError)


def test_execute_rejects_output_that_cannot_be_stored_naming_the_field() -> None:
    class NulEcho(EchoAgent):
        def run(self, data: Any, ctx: AgentContext) -> Any:
            return {"text": "a\x00b"}

    with pytest.raises(InvalidAgentOutput, match=re.escape("output.text: contains a NUL")):
        NulEcho().execute({"text": "hi"}, make_ctx())


def test_execute_returns_json_able_data() -> None:
    output = EchoAgent().execute({"text": "hi"}, make_ctx())
    assert json.loads(json.dumps(output)) == output


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": float("inf")}, "timeout"),
        ({"retry_backoff": float("nan")}, "retry_backoff"),
        ({"queue": ""}, "queue"),
        ({"queue": "a,b"}, "queue"),
        ({"queue": "my queue"}, "queue"),
    ],
    ids=["infinite-timeout", "nan-backoff", "empty-queue", "comma-queue", "blank-queue"],
)
def test_agent_options_refuse_values_no_worker_can_use(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AgentOptions(**options)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


# --- echo ---------------------------------------------------------------------------------


def test_echo_returns_its_text_unchanged() -> None:
    text = "  Hello,\n wörld! 123  "
    assert EchoAgent().execute({"text": text}, make_ctx()) == {"text": text}


# --- pii_redact ---------------------------------------------------------------------------


def test_pii_redact_counts_every_kind_including_zeros() -> None:
    result = redact("nothing personal here")
    assert result == {"text": "nothing personal here", "counts": dict.fromkeys(PII_KINDS, 0)}
    assert set(result["counts"]) == {"EMAIL", "PHONE", "IP", "CREDIT_CARD", "SSN"}


def test_pii_redact_replaces_emails() -> None:
    result = redact("write to john.doe+news@mail.example.co.uk or a_b@x.io.")
    assert result["text"] == "write to [EMAIL] or [EMAIL]."
    assert result["counts"]["EMAIL"] == 2


@pytest.mark.parametrize(
    ("text", "redacted", "kind"),
    [
        ("mail john\uff20example.com now", "mail [EMAIL] now", "EMAIL"),  # fullwidth @
        ("mail john\ufe6bexample.com now", "mail [EMAIL] now", "EMAIL"),  # small @
        ("\uff4a\uff4f\uff48\uff4e\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45"
         "\uff0e\uff43\uff4f\uff4d!", "[EMAIL]!", "EMAIL"),  # fullwidth throughout
        ("caf\u00e9 \ufb01le@x.io \u00e9t\u00e9", "caf\u00e9 [EMAIL] \u00e9t\u00e9", "EMAIL"),
        ("write jo\u200bhn@exam\u00adple.com", "write [EMAIL]", "EMAIL"),  # invisible
        ("call \uff14\uff11\uff15-\uff15\uff15\uff15-\uff10\uff11\uff10\uff10 today",
         "call [PHONE] today", "PHONE"),
        ("from \uff11\uff10.\uff10.\uff10.\uff11.", "from [IP].", "IP"),
        ("SSN \uff11\uff12\uff13\uff0d45-6789 ok", "SSN [SSN] ok", "SSN"),
        ("mail john\uff20example\u3002co\uff61jp now", "mail [EMAIL] now", "EMAIL"),
        ("from 10\u30020\u30020\u30021.", "from [IP].", "IP"),
        ("call 415\u2013555\u20130100 today", "call [PHONE] today", "PHONE"),  # en dashes
        ("SSN 123\u201145\u20116789 ok", "SSN [SSN] ok", "SSN"),  # non-breaking hyphens
        ("card 4111\u20121111\u20121111\u20121111.", "card [CREDIT_CARD].", "CREDIT_CARD"),
    ],
    ids=["fullwidth at", "small at", "fullwidth", "ligature", "invisible", "phone", "ip", "ssn",
         "ideographic dots", "ideographic ip", "en dashes", "nb hyphens", "figure dashes"],
)  # fmt: skip
def test_pii_redact_replaces_compatibility_forms_in_the_original_text(
    text: str, redacted: str, kind: str
) -> None:
    result = redact(text)
    assert result["text"] == redacted
    assert result["counts"][kind] == 1


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("пишите иван@почта.рф сегодня", "пишите [EMAIL] сегодня"),
        ("пишите иван@mail.ru", "пишите [EMAIL]"),
        ("josé.núñez@correo.es, gracias", "[EMAIL], gracias"),
        ("jose\u0301@correo.es", "[EMAIL]"),  # decomposed: e and a combining acute
        ("用户@例子.广告", "[EMAIL]"),
        ("用户\uff20例子\u3002广告", "[EMAIL]"),  # fullwidth at, ideographic full stop
        ("संपर्क@डाटामेल.भारत", "[EMAIL]"),  # vowel signs are combining marks
        ("χρήστης@παράδειγμα.ελ", "[EMAIL]"),
        ("ali\u0661\u0662@example.com", "[EMAIL]"),  # Arabic-Indic digits
        ("mail j\u043ehn@example.com now", "mail [EMAIL] now"),  # Cyrillic o in the local part
        ("mail john@ex\u0430mple.com now", "mail [EMAIL] now"),  # Cyrillic a in the domain
        ("ива\u200bн@поч\u00adт\u0430.рф!", "[EMAIL]!"),  # invisible characters inside
    ],
    ids=["cyrillic", "cyrillic local part", "accented", "decomposed", "cjk",
         "cjk ideographic dot", "devanagari", "greek", "arabic-indic digits",
         "homoglyph local part", "homoglyph domain", "invisible"],
)  # fmt: skip
def test_pii_redact_replaces_emails_with_letters_of_any_script(text: str, redacted: str) -> None:
    result = redact(text)
    assert result["text"] == redacted
    assert result["counts"]["EMAIL"] == 1


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            "メールはtaro@example.jpまでお願いします。明日送ります。",
            "メールは[EMAIL]までお願いします。明日送ります。",
        ),
        (
            "メールはtaro@example.jp。明日送ります。",
            "メールは[EMAIL]。明日送ります。",
        ),
        ("연락처는kim@example.kr입니다", "연락처는[EMAIL]입니다"),
        ("ติดต่อsomchai@example.co.thได้เลย", "ติดต่อ[EMAIL]ได้เลย"),
        ("ที่somchai@example.comครับ", "ที่[EMAIL]ครับ"),  # the tone mark stays on its letter
        ("ｶﾀｶﾅtaro@example.jp", "ｶﾀｶﾅ[EMAIL]"),  # halfwidth katakana
        ("请发到张伟@例子.广告", "[EMAIL]"),  # all Han: one address, the words around it too
        ("连系taro@例子.广告吧", "连系[EMAIL]"),
        ("写信给taro@例え.jpまで", "写信给[EMAIL]まで"),
        ("用户@example.com", "[EMAIL]"),
        # A Han "handle" and a sentence after an ideographic full stop read as one address,
        # up to the first character that is no letter of a script written without spaces.
        ("谢谢@张三。明天见", "[EMAIL]"),
        ("谢谢@张三。明天见!", "[EMAIL]!"),
    ],
    ids=["japanese", "japanese full stop", "korean", "thai", "thai tone mark",
         "halfwidth katakana", "han only", "latin local part, han domain",
         "han second level, latin top level", "han local part, latin domain",
         "han handle then a sentence", "han handle then a sentence and a mark"],
)  # fmt: skip
def test_pii_redact_ends_an_email_where_a_script_without_spaces_begins_or_ends(
    text: str, redacted: str
) -> None:
    result = redact(text)
    assert result["text"] == redacted
    assert result["counts"]["EMAIL"] == 1


@pytest.mark.parametrize(
    "text",
    [
        "цена@100",
        "цена@100.00",
        "a@b",
        "x@y",
        "привет@мир",  # no dotted domain
        "пишите @ivan и @иван",  # handles
        "я@д.ж",  # a final label of one letter
        "я@д.ж\u0301",  # one letter and its mark are still one letter
        "иван@почта.12",
        "иван@почта.\u0661\u0662",  # a final label of digits of another script
        "иван@.рф",
        "«иван»@почта.рф",  # the local part ends at the guillemet before the "@"
        "почта.рф и иван@",
    ],
)
def test_pii_redact_leaves_non_addresses_with_letters_of_other_scripts_alone(text: str) -> None:
    assert redact(text) == {"text": text, "counts": dict.fromkeys(PII_KINDS, 0)}


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415-555-0100",
        "(415) 555-0100",
        "415.555.0100",
        "415-555-0100",
        "4155550100",
        "+44 20 7946 0958",
        "+14155550100",
    ],
)
def test_pii_redact_replaces_common_phone_formats(phone: str) -> None:
    result = redact(f"call {phone} today")
    assert result["text"] == "call [PHONE] today"
    assert result["counts"]["PHONE"] == 1


@pytest.mark.parametrize("ip", ["192.168.1.1", "10.0.0.255", "0.0.0.0", "255.255.255.255"])
def test_pii_redact_replaces_valid_ipv4_addresses(ip: str) -> None:
    result = redact(f"from {ip}.")
    assert result["text"] == "from [IP]."
    assert result["counts"]["IP"] == 1


@pytest.mark.parametrize("text", ["999.1.1.1", "256.1.1.1", "1.2.3.4.5", "version 1.2.3"])
def test_pii_redact_leaves_invalid_ipv4_addresses_alone(text: str) -> None:
    assert redact(text) == {"text": text, "counts": dict.fromkeys(PII_KINDS, 0)}


@pytest.mark.parametrize("text", ["v1.2.3.4", "build1.2.3.4", "1.2.3.4rc1", "1.2.3.4.5"])
def test_pii_redact_leaves_dotted_numbers_glued_to_words_alone(text: str) -> None:
    assert redact(text)["counts"]["IP"] == 0


@pytest.mark.parametrize("phone", ["+44 (0)20 7946 0958", "+49 30 123456", "+91 98765 43210"])
def test_pii_redact_replaces_international_phone_numbers_with_long_groups(phone: str) -> None:
    result = redact(f"call {phone} today")
    assert result["text"] == "call [PHONE] today"
    assert result["counts"]["PHONE"] == 1


def test_pii_redact_types_an_international_phone_as_a_phone_even_when_it_passes_luhn() -> None:
    # "86 138 0013 8002" is 13 digits that pass Luhn: after a "+" it is a phone number.
    assert luhn_valid("8613800138002")
    result = redact("call +86 138 0013 8002")
    assert result["text"] == "call [PHONE]"
    assert (result["counts"]["PHONE"], result["counts"]["CREDIT_CARD"]) == (1, 0)


def test_pii_redact_does_not_take_a_run_of_zeros_for_a_card_number() -> None:
    text = "card 0000 0000 0000 0000 on file"
    assert redact(text) == {"text": text, "counts": dict.fromkeys(PII_KINDS, 0)}


def test_luhn_accepts_valid_card_numbers_and_rejects_altered_ones() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("378282246310006")


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3782 822463 10005"],
)
def test_pii_redact_replaces_card_numbers_that_pass_luhn(card: str) -> None:
    result = redact(f"card {card} on file")
    assert result["text"] == "card [CREDIT_CARD] on file"
    assert result["counts"]["CREDIT_CARD"] == 1
    assert result["counts"]["PHONE"] == 0


@pytest.mark.parametrize(
    "number", ["4111 1111 1111 1112", "4111-1111-1111-1112", "4111111111111112"]
)
def test_pii_redact_leaves_card_numbers_failing_luhn_alone_and_untyped(number: str) -> None:
    text = f"card {number} on file"
    assert redact(text) == {"text": text, "counts": dict.fromkeys(PII_KINDS, 0)}


def test_pii_redact_replaces_valid_ssns() -> None:
    result = redact("SSN 123-45-6789, spouse 078-05-1121")
    assert result["text"] == "SSN [SSN], spouse [SSN]"
    assert result["counts"]["SSN"] == 2
    assert result["counts"]["PHONE"] == 0


@pytest.mark.parametrize(
    "number", ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"]
)
def test_pii_redact_leaves_never_issued_ssns_alone(number: str) -> None:
    assert redact(number)["counts"] == dict.fromkeys(PII_KINDS, 0)


def test_pii_redact_leaves_dates_times_and_small_numbers_alone() -> None:
    text = "On 2024-01-15 at 10:30 we shipped 3 items for order 12345."
    assert redact(text)["text"] == text


def test_pii_redact_leaves_ranges_written_with_dashes_alone() -> None:
    # Dashes read as "-" for the detectors; a range or a date in typeset text is no number.
    text = "Pages 10\u201320 of the 1990\u20132000 report, 2024\u201101\u201115, 9\u20135."
    assert redact(text)["text"] == text


def test_pii_redact_counts_a_mix_of_kinds() -> None:
    text = (
        "Jane (jane@example.com, +1 415-555-0100) paid with 4111 1111 1111 1111 "
        "from 203.0.113.7; SSN 123-45-6789."
    )
    result = redact(text)
    assert result["text"] == (
        "Jane ([EMAIL], [PHONE]) paid with [CREDIT_CARD] from [IP]; SSN [SSN]."
    )
    assert result["counts"] == {"EMAIL": 1, "PHONE": 1, "IP": 1, "CREDIT_CARD": 1, "SSN": 1}


# --- keywords -----------------------------------------------------------------------------


def test_keywords_ranks_terms_by_frequency_with_scores_over_kept_tokens() -> None:
    result = keywords("Redis queues. Redis workers. Redis queues and workers, workers!")
    assert result == [
        {"term": "redis", "score": 0.375},
        {"term": "workers", "score": 0.375},
        {"term": "queues", "score": 0.25},
    ]


def test_keywords_breaks_ties_alphabetically_whatever_the_word_order() -> None:
    forward = keywords("zebra apple mango")
    backward = keywords("mango apple zebra")
    assert [k["term"] for k in forward] == ["apple", "mango", "zebra"]
    assert forward == backward


def test_keywords_drops_stop_words_short_tokens_numbers_and_case() -> None:
    result = keywords("The AI and the ML of it: 2024 is THE year, the Year of Python.")
    assert [k["term"] for k in result] == ["year", "python"]


def test_keywords_ignores_redaction_placeholders() -> None:
    text = PiiRedactAgent().execute(
        {"text": "mail a@b.com or c@d.org, call 415-555-0100 about the invoice"}, make_ctx()
    )["text"]
    assert [k["term"] for k in keywords(text)] == ["call", "invoice", "mail"]
    assert keywords("EMAIL PHONE CREDIT_CARD SSN [IP] invoice") == [
        {"term": "invoice", "score": 1.0}
    ]


def test_keywords_returns_at_most_top_terms() -> None:
    text = "alpha beta gamma delta epsilon"
    assert len(keywords(text, top=2)) == 2
    assert len(keywords(text, top=100)) == 5


def test_keywords_of_text_without_content_words_is_empty() -> None:
    assert keywords("") == []
    assert keywords("it is what it is, 42") == []


# --- summarize ----------------------------------------------------------------------------

ARTICLE = (
    "Celery workers consume tasks from Redis queues. "
    "The weather was pleasant yesterday. "
    "Workers acknowledge tasks late so Redis can redeliver lost tasks. "
    "Lunch was served at noon. "
    "Redis queues feed many Celery workers with tasks."
)


def test_summarize_picks_the_most_on_topic_sentences_in_original_order() -> None:
    result = SummarizeAgent().execute({"text": ARTICLE, "sentences": 2}, make_ctx())
    assert result["sentences"] == [
        "Celery workers consume tasks from Redis queues.",
        "Redis queues feed many Celery workers with tasks.",
    ]
    assert result["summary"] == " ".join(result["sentences"])


def test_summarize_keeps_original_order_when_the_best_sentence_comes_last() -> None:
    text = "Short note. Redis tasks and Redis queues. Redis tasks, Redis queues, Redis workers."
    result = SummarizeAgent().execute({"text": text, "sentences": 2}, make_ctx())
    positions = [text.index(sentence) for sentence in result["sentences"]]
    assert positions == sorted(positions)
    assert "Short note." not in result["sentences"]


def test_summarize_returns_every_sentence_when_asked_for_more_than_there_are() -> None:
    text = "First line here.\n\nSecond   line\nwraps here! Third line here?"
    result = SummarizeAgent().execute({"text": text, "sentences": 10}, make_ctx())
    assert result["sentences"] == [
        "First line here.",
        "Second line wraps here!",
        "Third line here?",
    ]


def test_summarize_of_empty_text_is_empty() -> None:
    assert SummarizeAgent().execute({"text": "  "}, make_ctx()) == {"summary": "", "sentences": []}


def test_summarize_does_not_end_sentences_at_titles_initials_or_initialisms() -> None:
    text = "Dr. Who met J. Smith. The U.S. economy grew, e.g. in May. Then it stopped."
    result = SummarizeAgent().execute({"text": text, "sentences": 10}, make_ctx())
    assert result["sentences"] == [
        "Dr. Who met J. Smith.",
        "The U.S. economy grew, e.g. in May.",
        "Then it stopped.",
    ]


def test_summarize_ends_a_sentence_after_a_closing_quote() -> None:
    text = 'He said "Stop." Then he left.'
    result = SummarizeAgent().execute({"text": text, "sentences": 10}, make_ctx())
    assert result["sentences"] == ['He said "Stop."', "Then he left."]


def test_summarize_treats_text_without_punctuation_as_one_sentence() -> None:
    text = "no punctuation at all\nacross two lines"
    result = SummarizeAgent().execute({"text": text, "sentences": 2}, make_ctx())
    assert result["sentences"] == ["no punctuation at all across two lines"]


def test_summarize_does_not_score_redaction_placeholders_as_topic_words() -> None:
    text = "Invoice overdue for the invoice account. Mail [EMAIL] [EMAIL] [EMAIL] [EMAIL] now."
    result = SummarizeAgent().execute({"text": text, "sentences": 1}, make_ctx())
    assert result["sentences"] == ["Invoice overdue for the invoice account."]


# --- sentiment ----------------------------------------------------------------------------


def test_sentiment_labels_positive_text() -> None:
    result = sentiment("What a great, reliable service. I love it!")
    assert result == {"score": 1.0, "label": "positive", "positive": 3, "negative": 0}


def test_sentiment_labels_negative_text() -> None:
    result = sentiment("The app is slow and buggy; a terrible experience, though the logo is nice.")
    assert result["label"] == "negative"
    assert (result["positive"], result["negative"]) == (1, 3)
    assert result["score"] == -0.5


def test_sentiment_of_text_without_lexicon_words_is_neutral_zero() -> None:
    assert sentiment("The meeting is at three.") == {
        "score": 0.0,
        "label": "neutral",
        "positive": 0,
        "negative": 0,
    }


def test_sentiment_of_balanced_text_is_neutral() -> None:
    assert sentiment("good food, bad service")["label"] == "neutral"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The food was not good.", "negative"),
        ("It was not very good.", "negative"),
        ("This isn't bad at all.", "positive"),
        ("No problem, I don\u2019t hate it.", "positive"),
    ],
)
def test_sentiment_negation_flips_the_next_sentiment_word(text: str, label: str) -> None:
    assert sentiment(text)["label"] == label


@pytest.mark.parametrize(
    "text", ["No, it was great.", "I don't know, it's great", "Nothing works. Great support!"]
)
def test_sentiment_negation_stops_at_the_end_of_its_clause(text: str) -> None:
    assert sentiment(text)["positive"] == 1


def test_sentiment_negation_fades_after_a_few_words() -> None:
    result = sentiment("Not that I would ever say it, but the result was good.")
    assert (result["positive"], result["negative"]) == (1, 0)


def test_sentiment_negation_flips_only_one_word() -> None:
    result = sentiment("not bad, bad")
    assert (result["positive"], result["negative"]) == (1, 1)


# --- merge --------------------------------------------------------------------------------


def test_merge_combines_upstream_outputs_keyed_by_step_id() -> None:
    upstream = {"redact": {"text": "[EMAIL]"}, "mood": {"score": 0.5, "label": "positive"}}
    result = MergeAgent().execute({}, make_ctx(upstream=upstream))
    assert result == {"merged": upstream}


def test_merge_lays_input_keys_over_upstream_outputs() -> None:
    upstream = {"a": {"x": 1}, "b": {"y": 2}}
    result = MergeAgent().execute({"b": "replaced", "c": [1, None]}, make_ctx(upstream=upstream))
    assert result == {"merged": {"a": {"x": 1}, "b": "replaced", "c": [1, None]}}
    assert json.loads(json.dumps(result)) == result


def test_merge_of_nothing_is_empty() -> None:
    assert MergeAgent().execute({}, make_ctx()) == {"merged": {}}


# --- sleep --------------------------------------------------------------------------------


def test_sleep_sleeps_for_the_given_time() -> None:
    started = time.monotonic()
    result = SleepAgent().execute({"seconds": 0.2}, make_ctx())
    assert time.monotonic() - started >= 0.2
    assert 0.2 <= result["slept"] < 1.0


def test_sleep_of_zero_seconds_returns_at_once() -> None:
    assert SleepAgent().execute({"seconds": 0}, make_ctx())["slept"] < 0.05


def test_sleep_stops_early_when_the_run_is_cancelled() -> None:
    checks: list[float] = []

    def cancelled_after_three_checks() -> bool:
        checks.append(time.monotonic())
        return len(checks) > 3

    started = time.monotonic()
    result = SleepAgent().execute(
        {"seconds": 30}, make_ctx(is_cancelled=cancelled_after_three_checks)
    )
    assert time.monotonic() - started < 2
    assert result["slept"] < 2
    assert len(checks) == 4


def test_sleep_allows_a_timeout_longer_than_its_longest_sleep() -> None:
    assert SleepAgent.options.timeout > 3600


# --- fail ---------------------------------------------------------------------------------


def test_fail_raises_retryable_error_while_attempt_is_at_most_times_then_succeeds() -> None:
    agent = FailAgent()
    for attempt in (1, 2):
        with pytest.raises(RetryableError, match="induced failure"):
            agent.execute({"times": 2}, make_ctx(attempt=attempt))
    assert agent.execute({"times": 2}, make_ctx(attempt=3)) == {"attempt": 3}


def test_fail_raises_permanent_error_with_the_given_message_when_permanent() -> None:
    with pytest.raises(PermanentError, match="boom") as caught:
        FailAgent().execute({"times": 1, "permanent": True, "message": "boom"}, make_ctx())
    assert not isinstance(caught.value, RetryableError)


def test_fail_with_zero_times_succeeds_at_once() -> None:
    assert FailAgent().execute({"times": 0}, make_ctx()) == {"attempt": 1}


def test_fail_retries_fast_enough_for_tests() -> None:
    options = FailAgent.options
    assert (options.max_retries, options.retry_backoff, options.retry_backoff_max) == (5, 0.1, 1)


def test_an_agent_run_outside_the_farm_has_every_call_admitted() -> None:
    ctx = AgentContext(run_id="r", step_id="s", attempt=1)
    with ctx.call(Resource("service", "partner", tokens=10)) as ticket:
        ticket.used_tokens(12)
        ticket.failed()
    assert ctx.services is None
    assert str(Resource("model", "openai:gpt-4o")) == "model:openai:gpt-4o"
