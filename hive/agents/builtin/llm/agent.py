"""The ``llm`` agent: a chat completion from an OpenAI-compatible API, with a fallback chain
of providers, an optional ``output_schema`` with repairs, and the tokens' usage and cost.

Every call goes through ``ctx.call(Resource("model", "<provider>:<model>"))``, so the
farm's rate and token limits and the provider's breaker hold. What happens when a call
brings no answer:

- 5xx, a timeout, no connection, a body that is no completion, or a 429: the next provider
  of the chain is tried (a 429 tries the fallback first, since another provider or model
  has its own quota). If none answers, the step fails with a retryable
  :class:`~hive.errors.TransientError`; when a 429 said how long to wait (or the farm
  deferred a provider), the shortest such wait is the retry's countdown.
- The farm defers the call (a limit is reached, the breaker is open), or its breaker is open
  with ``on_open: fail`` or ``escalate``: the next provider is tried, without calling this
  one. If none was tried and failed, the step is deferred with the shortest countdown when
  a provider was deferred; else held for a person when a breaker says ``escalate``; else it
  fails for good with :class:`~hive.errors.BreakerOpen`.
- Another 4xx (bad request, unknown model, wrong key): the step fails for good, naming it.

5xx, timeouts and unreachable providers count as failures of that provider's breaker;
429 and other 4xx do not (the provider is up and answering). Once a provider fails, the
step's later calls (repairs) start from the one that answered.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hive import metrics
from hive.agents.base import Agent, AgentContext, AgentOptions, Resource
from hive.agents.builtin.llm import client
from hive.agents.builtin.llm.client import CallFailed, Completion, ProviderDown, RateLimited
from hive.agents.builtin.llm.models import LlmInput, LlmOutput, LlmUsage, Provider
from hive.agents.builtin.llm.pricing import PriceTable, price_table
from hive.agents.builtin.llm.repair import OutputSchema, answer_with_repairs
from hive.agents.governance import InputGuardOptions
from hive.errors import (
    ApprovalRequired,
    BreakerOpen,
    NoPassingInstance,
    PermanentError,
    SettingsError,
    StepDeferred,
    TransientError,
)
from hive.settings import credential


class LlmAgent(Agent[LlmInput, LlmOutput]):
    """Asks a chat model; see the module's docstring for fallbacks and failures."""

    name = "llm"
    version = "1"
    input_model = LlmInput
    output_model = LlmOutput
    # A call may take a while and a step may make several (fallbacks, repairs). The farm's
    # input guard screens every llm step's messages unless a pipeline says otherwise.
    options = AgentOptions(
        timeout=600.0, max_retries=3, retry_backoff=2.0, input_guard=InputGuardOptions()
    )

    @classmethod
    def pinned_fields(cls, template: Mapping[str, Any]) -> dict[str, str]:
        """Where the calls go and what they are counted as, always written in the pipeline:
        ``base_url``, ``service`` and ``api_key_env`` decide which server gets which API
        key (from a run's input, a submitter could send the key to a server of its own);
        ``provider`` and ``model`` label the metrics and key the farm's limits and breakers
        (``model:<provider>:<model>``), which must stay a bounded set the operator chose;
        ``fallback`` holds all of these for each of its endpoints."""
        where = "a run's input could send the API key elsewhere"
        counted = "it labels metrics and keys the farm's limits, which must stay a bounded set"
        return {
            "provider": counted,
            "model": counted,
            "base_url": where,
            "service": where,
            "api_key_env": where,
            "fallback": f"{where}, and its providers and models label metrics and key the "
            "farm's limits, which must stay a bounded set",
        }

    def estimate_cost(self, raw_input: dict[str, Any]) -> float | None:
        """One call's cost at the dearest priced endpoint of the chain: the prompt at about
        four characters a token, the answer at ``max_tokens`` (else 256). Repairs and
        fallbacks after a failed call are not reserved; what they cost is settled after
        the step. None when no endpoint has a price (or the input or table is invalid)."""
        try:
            data = LlmInput.model_validate(raw_input)
            prices = price_table()
        except (ValidationError, SettingsError):
            return None
        if prices is None:
            return None
        messages = [{"role": m.role, "content": m.text()} for m in data.messages]
        prompt = client.estimate_prompt_tokens(messages)
        answer = data.max_tokens or client.DEFAULT_ANSWER_TOKENS
        costs = [
            cost
            for endpoint in data.chain()
            if (cost := prices.cost(endpoint.provider, endpoint.model, prompt, answer)) is not None
        ]
        return max(costs) if costs else None

    def run(self, data: LlmInput, ctx: AgentContext) -> LlmOutput:
        """Ask ``data.model`` (or a fallback) and return its answer.

        Args:
            data: the endpoints, the messages and how to ask.
            ctx: the step; its ``call`` admits each call, its usage receives the tokens.

        Returns:
            The answer, its parsed JSON with ``output_schema``, the endpoint that gave it,
            and the tokens and cost of every call the step made.

        Raises:
            StepDeferred: the farm deferred every provider of the chain.
            TransientError: no provider answered (retried).
            PermanentError: a provider refused the request (4xx), an API key variable is
                not set, the price table is malformed, or the answer never fit
                ``output_schema``.
        """
        try:
            prices = price_table()  # before any call: a broken table must not cost tokens
        except SettingsError as exc:
            raise PermanentError(str(exc)) from None
        chain = _Chain(data, ctx, prices)
        schema = OutputSchema(data.output_schema) if data.output_schema is not None else None
        messages = [{"role": m.role, "content": m.text()} for m in data.messages]
        answer = answer_with_repairs(chain.ask, messages, schema, data.max_repairs)
        answered = chain.endpoints[chain.position]
        return LlmOutput(
            content=answer.completion.content,
            data=answer.data,
            provider=answered.provider,
            model=answered.model,
            finish_reason=answer.completion.finish_reason,
            usage=LlmUsage(
                prompt_tokens=chain.prompt_tokens, completion_tokens=chain.completion_tokens
            ),
            cost=chain.cost,
            calls=chain.calls,
            repairs=answer.repairs,
        )


@dataclass
class _Chain:
    """The step's endpoints, asked in order; remembers which one answered last."""

    data: LlmInput
    ctx: AgentContext
    prices: PriceTable | None
    endpoints: list[Provider] = field(init=False)
    position: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None

    def __post_init__(self) -> None:
        self.endpoints = self.data.chain()

    def ask(self, messages: list[dict[str, str]]) -> Completion:
        """One answer from the first endpoint, from ``position`` on, that gives one.

        Raises:
            StepDeferred, TransientError, PermanentError: see the module's docstring.
        """
        if self.calls and self.ctx.is_cancelled():
            raise PermanentError("the run was cancelled; no further call made")
        passed = _Passed()
        failed: list[CallFailed] = []
        for index in range(self.position, len(self.endpoints)):
            endpoint = self.endpoints[index]
            try:
                completion = self._call(endpoint, messages)
            except StepDeferred as exc:
                metrics.llm_called(endpoint.provider, endpoint.model, "deferred")
                self.ctx.logger.info("%s deferred: %s", endpoint.resource_name, exc.reason)
                passed.deferred.append(exc)
                continue
            except (BreakerOpen, ApprovalRequired) as exc:
                # on_open: fail or escalate: this provider is out, not the chain.
                metrics.llm_called(endpoint.provider, endpoint.model, "breaker_open")
                self.ctx.logger.info("%s passed over: %s", endpoint.resource_name, exc)
                passed.add(exc)
                continue
            except (ProviderDown, RateLimited) as exc:
                metrics.llm_called(endpoint.provider, endpoint.model, exc.outcome)
                self.ctx.logger.warning("llm call failed: %s", exc)
                failed.append(exc)
                continue
            except CallFailed as exc:  # Refused: no other provider is asked to fix the request
                metrics.llm_called(endpoint.provider, endpoint.model, exc.outcome)
                raise PermanentError(f"{exc}") from None
            self.position = index
            self._count(endpoint, completion)
            return completion
        raise _none_answered(passed, failed)

    def _call(self, endpoint: Provider, messages: list[dict[str, str]]) -> Completion:
        # Read before the guard admits the call: a missing key is no failure of the provider.
        api_key = credential(endpoint.api_key_env) if endpoint.api_key_env else None
        base_url = self._base_url(endpoint)
        body = client.request_body(
            endpoint.model,
            messages,
            temperature=self.data.temperature,
            max_tokens=self.data.max_tokens,
        )
        estimate = client.estimate_tokens(messages, self.data.max_tokens)
        refused: CallFailed | None = None
        with self.ctx.call(Resource("model", endpoint.resource_name, tokens=estimate)) as ticket:
            try:
                completion = client.chat(
                    endpoint,
                    base_url,
                    api_key,
                    body,
                    timeout_s=self.data.timeout_s,
                    headers=self._headers(),
                    stop=self.ctx.is_cancelled,
                )
            except (RateLimited, client.Refused) as exc:
                # The provider is up and answered: not a failure for its breaker.
                ticket.used_tokens(0)
                refused = exc
            else:
                ticket.used_tokens(completion.total_tokens)
        if refused is not None:
            raise refused
        return completion

    def _base_url(self, endpoint: Provider) -> str:
        """The endpoint's ``base_url``, or the URL of a passing instance of its ``service``
        (picked before the guard admits the call: no instance is no failure of the model).

        Raises:
            ProviderDown: the service has no passing instance (the next endpoint is tried).
            PermanentError: a service, outside the farm (no registry).
        """
        if endpoint.base_url is not None:
            return endpoint.base_url
        service = str(endpoint.service)
        if self.ctx.services is None:
            raise PermanentError(
                f"service {service!r}: no service registry outside the farm; give a base_url"
            )
        try:
            # The worker's API key goes to the operator's shared instances only.
            shared_only = endpoint.api_key_env is not None
            return self.ctx.services.pick(service, shared_only=shared_only).rstrip("/")
        except NoPassingInstance as exc:
            raise ProviderDown(endpoint, str(exc)) from None

    def _headers(self) -> dict[str, str]:
        ctx = self.ctx
        headers = {"X-Request-ID": f"{ctx.run_id}-{ctx.step_id}-{ctx.attempt}"}
        if ctx.trace_id:
            # A span id of this call's own (W3C: 16 hex digits, not all zero).
            headers["traceparent"] = f"00-{ctx.trace_id}-{secrets.token_hex(8)}-01"
        return headers

    def _count(self, endpoint: Provider, completion: Completion) -> None:
        cost = None
        if self.prices is not None:
            cost = self.prices.cost(
                endpoint.provider,
                endpoint.model,
                completion.prompt_tokens,
                completion.completion_tokens,
            )
        if cost is None and self.prices is not None:
            _warn_unpriced(self.ctx, endpoint)
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        usage = {
            "prompt_tokens": float(completion.prompt_tokens),
            "completion_tokens": float(completion.completion_tokens),
            "llm_calls": 1.0,
        }
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
            usage["cost"] = cost
        self.ctx.report_usage(**usage)
        metrics.llm_called(
            endpoint.provider,
            endpoint.model,
            "ok",
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost=cost,
        )


_unpriced: set[str] = set()


def _warn_unpriced(ctx: AgentContext, endpoint: Provider) -> None:
    # Once per model and process: every call of it would say the same.
    if endpoint.resource_name not in _unpriced:
        _unpriced.add(endpoint.resource_name)
        ctx.logger.warning(
            "the price table has no price for %s; its tokens are recorded without a cost",
            endpoint.resource_name,
        )


@dataclass
class _Passed:
    """The endpoints of one pass down the chain that the farm kept the call from."""

    deferred: list[StepDeferred] = field(default_factory=list)
    opened: list[BreakerOpen] = field(default_factory=list)
    """Breakers open with ``on_open: fail``."""
    escalated: list[ApprovalRequired] = field(default_factory=list)
    """Breakers open with ``on_open: escalate``."""

    def add(self, exc: BreakerOpen | ApprovalRequired) -> None:
        if isinstance(exc, BreakerOpen):
            self.opened.append(exc)
        else:
            self.escalated.append(exc)

    def reasons(self) -> list[str]:
        return (
            [f"{d.reason} (deferred)" for d in self.deferred]
            + [o.message for o in self.opened]
            + [e.reason for e in self.escalated]
        )


def _none_answered(passed: _Passed, failed: list[CallFailed]) -> Exception:
    """What the step raises when no endpoint of the chain answered: a retryable failure if
    one was tried and failed; else a deferral, if one may go later by itself; else held for
    a person, if a breaker says so; else (every breaker open with ``on_open: fail``) the
    step fails for good."""
    deferred = passed.deferred
    if not failed and deferred:
        soonest = min(deferred, key=lambda d: d.countdown_s)
        return StepDeferred(soonest.reason, soonest.countdown_s, soonest.kind)
    if not failed and passed.escalated:
        held = passed.escalated[0]
        reason = "; ".join(e.reason for e in passed.escalated)
        return ApprovalRequired(reason, held.step_input, held.source)
    if not failed:
        opened = passed.opened
        if len(opened) == 1:
            return opened[0]
        return BreakerOpen(", ".join(o.breaker for o in opened), min(o.retry_in_s for o in opened))
    waits = [d.countdown_s for d in deferred]
    waits += [
        f.retry_after_s
        for f in failed
        if isinstance(f, RateLimited) and f.retry_after_s is not None
    ]
    reasons = [str(f) for f in failed] + passed.reasons()
    return TransientError(
        "no provider answered: " + "; ".join(reasons), retry_after_s=min(waits) if waits else None
    )
