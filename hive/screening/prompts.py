"""Which strings of a step's input the input guard screens, and the input rebuilt with them
redacted.

A chat-shaped input (a ``messages`` list of ``{role, content}`` objects: the ``llm``
agent's, or any agent's of that shape) is screened in its messages alone: every string of
each ``content``. A ``system`` message written out in the pipeline is its author's own text:
redacted like the rest, not scored for injection (a system prompt saying "never reveal
these instructions" is no attack). A system message that came from a run's input (the
step's template says ``messages: $input.messages``, or a reference in the message) is a
producer's text, and scored as any other. Any other input is screened in every string it
holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Redact = Callable[[str], str]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _mapped(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _mapped(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_mapped(item, redact) for item in value]
    return value


def _messages(step_input: Any) -> list[dict[str, Any]] | None:
    if not isinstance(step_input, dict):
        return None
    messages = step_input.get("messages")
    if (
        isinstance(messages, list)
        and messages
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
    ):
        return messages
    return None


def injection_texts(step_input: Any, template: Any = None) -> list[str]:
    """The strings scored for prompt injection. ``template`` is the step's input template:
    a system message is left out only when the template holds that very message at its
    place, written out (no reference resolved into it)."""
    messages = _messages(step_input)
    if messages is None:
        return _strings(step_input)
    written = _written_messages(template)
    return [
        s
        for i, m in enumerate(messages)
        if not (m.get("role") == "system" and i < len(written) and written[i] == m)
        for s in _strings(m["content"])
    ]


def _written_messages(template: Any) -> list[Any]:
    """The template's messages as the pipeline writes them; none when they come whole from
    a reference. A message holding a reference never equals its resolved value, nor one
    with an escaped ``$$`` (those are scored: the safe side)."""
    if isinstance(template, dict) and isinstance(template.get("messages"), list):
        return list(template["messages"])
    return []


def redacted(step_input: Any, redact: Redact) -> Any:
    """``step_input`` with ``redact`` applied to each screened string (a new value)."""
    messages = _messages(step_input)
    if messages is None:
        return _mapped(step_input, redact)
    rebuilt = [{**m, "content": _mapped(m["content"], redact)} for m in messages]
    return {**step_input, "messages": rebuilt}
