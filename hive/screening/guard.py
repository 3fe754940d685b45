"""The input guard in the step path: between resolving a step's input and running its agent
(the agent cannot skip it), for every step whose options carry an ``input_guard`` (the
``llm`` agent's steps by default).

Personal data of the chosen types is redacted from the prompt before the agent sees it.
The prompt is scored for injection; at or above the threshold the step's ``injection``
action applies: ``flag`` (it goes on), ``block`` (it fails for good, :class:`InputBlocked`,
whose message never quotes the input nor the rule that matched) or ``escalate`` (held for
a person: :class:`~hive.errors.ApprovalRequired`; once approved it runs, still redacted).
Every screening is one ``input_screened`` event: the decision, the score, the rule ids, the
counts of what was redacted, never the text.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hive import metrics
from hive.agents.builtin.guard import redact_pii, rule_set, score_injection
from hive.agents.builtin.guard.scan import Injection
from hive.agents.governance import InputGuardOptions
from hive.db import approvals
from hive.db import events as event_log
from hive.db.retrying import Connection, in_transaction
from hive.errors import ApprovalRequired, InputBlocked, PermanentError, SettingsError
from hive.screening import prompts

logger = logging.getLogger(__name__)


def screen_step(
    run_id: uuid.UUID,
    step_id: str,
    agent: str,
    guard: InputGuardOptions | None,
    step_input: Any,
    template: Any = None,
) -> Any:
    """The input the agent gets: ``step_input`` with its personal data redacted.
    ``template`` is the step's input template, which tells the pipeline's own system
    messages (not scored for injection) from those a run's input supplied.

    Raises:
        InputBlocked: the injection score reached the threshold and the action is ``block``.
        ApprovalRequired: it reached the threshold, the action is ``escalate``, and no
            person has approved this step yet.
        PermanentError: the injection rules file is malformed (names the variable).
    """
    if guard is None or not guard.active:
        return step_input
    counts: dict[str, int] = {}

    def redact(text: str) -> str:
        clean, found = redact_pii(text, guard.pii)
        for kind, n in found.items():
            counts[kind] = counts.get(kind, 0) + n
        return clean

    screened = prompts.redacted(step_input, redact) if guard.pii else step_input
    injection = Injection(0.0)
    if guard.injection != "off":
        try:
            rules = rule_set()
        except SettingsError as exc:
            raise PermanentError(str(exc)) from None
        injection = score_injection(prompts.injection_texts(step_input, template), rules)
    suspect = guard.injection != "off" and injection.score >= guard.threshold
    action = guard.injection if suspect else "pass"
    detail: dict[str, Any] = {
        "decision": action,
        "score": injection.score,
        "threshold": guard.threshold,
        "rules": injection.rules,
        "categories": injection.categories,
        "pii": counts,
    }

    def record(conn: Connection) -> str:
        decision = action
        if action == "escalate" and approvals.granted(conn, run_id, step_id):
            decision = "pass"
            detail.update(decision=decision, approved=True)
        event_log.record(conn, "input_screened", detail, run_id=run_id, step_id=step_id)
        return decision

    decision = in_transaction(record)
    metrics.INPUT_SCREENED.labels(agent, decision).inc()
    if decision == "pass" or decision == "flag":
        if decision == "flag":
            logger.warning("input guard: suspected prompt injection flagged (%s)", injection.score)
        return screened
    why = (
        f"suspected prompt injection (score {injection.score:.2f}, threshold "
        f"{guard.threshold:g}; categories: {', '.join(injection.categories)})"
    )
    if decision == "block":
        raise InputBlocked(f"the input guard blocked the step: {why}")
    raise ApprovalRequired(f"input guard: {why}", screened)
