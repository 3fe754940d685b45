"""The ``http`` agent: one HTTP call to a URL, or to a service of the registry by name.

What happens becomes the step's outcome: an expected status is the output; 5xx, 429, a
timeout or a lost connection is a :class:`~hive.errors.TransientError` (retried, after the
answer's ``Retry-After`` when it gives one); any other status is a
:class:`~hive.errors.PermanentError` naming the method, address and status. With
``service:``, a connection refused or a 5xx tries another passing instance before the
attempt fails.

A credential is read from the worker's environment at call time
(:func:`hive.settings.credential`) and lives only in the request's headers: should an
answer or an error echo it, it is scrubbed before anything is stored.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from hive.agents.base import Agent, AgentContext, Resource
from hive.agents.builtin.http_models import (
    HEADER_VALUE,
    Auth,
    BasicAuth,
    BearerAuth,
    HttpInput,
    HttpOutput,
)
from hive.agents.builtin.http_transport import (
    Answer,
    BodyTooLarge,
    Stopped,
    exchange,
    retry_after_s,
)
from hive.errors import (
    CredentialError,
    HiveError,
    NoPassingInstance,
    PermanentError,
    RetryableError,
    TransientError,
)
from hive.settings import credential, get_settings

if TYPE_CHECKING:
    import httpx

# Instances of one service tried within one attempt, before the attempt fails.
MAX_INSTANCES_PER_ATTEMPT = 3
# Secrets shorter than this are not scrubbed from answers: it would mangle ordinary text.
_SCRUB_MIN_CHARS = 6
_EXCERPT_CHARS = 200
_DROPPED_HEADERS = frozenset({"set-cookie", "set-cookie2"})


class HttpAgent(Agent[HttpInput, HttpOutput]):
    """Calls an HTTP endpoint (a URL, or a service by name) and returns its answer."""

    name = "http"
    version = "1"
    input_model = HttpInput
    output_model = HttpOutput

    @classmethod
    def pinned_fields(cls, template: Mapping[str, Any]) -> dict[str, str]:
        """With ``auth``, where the call goes (``url``, ``service``) and the ``auth`` itself
        must be written in the pipeline: a run's input could otherwise send the worker's
        credential to a server of its choosing. Without it, a URL from the run's input is
        fine: fetching what a run names is a legitimate use."""
        if template.get("auth") is None:
            return {}
        why = "auth is set, and a run's input could send the credential elsewhere"
        return dict.fromkeys(("auth", "url", "service"), why)

    def run(self, data: HttpInput, ctx: AgentContext) -> HttpOutput:
        call = _Call(data, ctx, _Credential.read(data.auth))
        if data.url is not None:
            host = urlsplit(data.url).hostname or "?"
            return call.once(Resource("service", host), data.url).result()
        return call.via_registry(str(data.service))


@dataclass(frozen=True)
class _Credential:
    """The header that carries a step's credential, and what must never be stored."""

    header: str
    value: str = field(repr=False)
    hidden: tuple[str, ...] = field(repr=False)

    @classmethod
    def read(cls, auth: Auth | None) -> _Credential | None:
        if auth is None:
            return None
        secret = credential(auth.env)
        if not HEADER_VALUE.fullmatch(secret):
            # httpx would refuse it with an error that quotes it.
            raise CredentialError(
                auth.env, f"the environment variable {auth.env} holds what no header may carry"
            )
        if isinstance(auth, BearerAuth):
            header, value = "Authorization", f"Bearer {secret}"
        elif isinstance(auth, BasicAuth):
            token = base64.b64encode(f"{auth.username}:{secret}".encode()).decode()
            header, value = "Authorization", f"Basic {token}"
        else:
            header, value = auth.header, secret
        # Longest first, so that a header value is scrubbed whole, not around its secret.
        hidden = sorted({secret, value, value.partition(" ")[2]}, key=len, reverse=True)
        return cls(header, value, tuple(h for h in hidden if len(h) >= _SCRUB_MIN_CHARS))

    def scrub(self, text: str) -> str:
        for value in self.hidden:
            text = text.replace(value, "***")
        return text


@dataclass
class _Outcome:
    """One exchange's result: an output, or an error and whether another instance may
    serve the call instead."""

    output: HttpOutput | None = None
    error: HiveError | None = None
    fail_over: bool = False

    def result(self) -> HttpOutput:
        if self.error is not None:
            raise self.error
        assert self.output is not None
        return self.output


class _Call:
    """One step's call, as it goes to one instance or another."""

    def __init__(self, data: HttpInput, ctx: AgentContext, cred: _Credential | None) -> None:
        self.data = data
        self.ctx = ctx
        self.cred = cred
        self.settings = get_settings().http

    def via_registry(self, service: str) -> HttpOutput:
        lookup = self.ctx.services
        if lookup is None:
            raise PermanentError(
                f"service {service!r}: no service registry outside the farm; give a url"
            )
        tried: list[str] = []
        failed: HiveError | None = None
        for _ in range(MAX_INSTANCES_PER_ATTEMPT):
            try:
                # The worker's credential goes to the operator's shared instances only.
                address = lookup.pick(service, exclude=tried, shared_only=self.cred is not None)
            except NoPassingInstance as exc:
                if failed is not None:
                    break
                raise TransientError(str(exc)) from exc
            tried.append(address)
            outcome = self.once(Resource("service", service), _joined(address, self.data.path))
            if not outcome.fail_over:
                return outcome.result()
            failed = outcome.error
            self.ctx.logger.warning(
                "service %r: instance %s failed; trying another", service, address
            )
        assert isinstance(failed, RetryableError)
        raise TransientError(
            f"service {service!r}: {_tried(tried)} failed; the last: {failed}",
            retry_after_s=failed.retry_after_s,
        )

    def once(self, resource: Resource, url: str) -> _Outcome:
        """One exchange with ``url``, admitted by the farm's guard for ``resource``: a
        failure of the service (5xx, 429, no answer) counts against its breaker; a refusal
        of the request (4xx) does not."""
        with self.ctx.call(resource) as ticket:
            outcome = self._exchange(url)
            if isinstance(outcome.error, RetryableError):
                ticket.failed()
        return outcome

    def _exchange(self, url: str) -> _Outcome:
        import httpx  # here: checking a pipeline's steps loads this module, and needs none

        data = self.data
        where = f"{data.method} {_address(url)}"
        try:
            # The step's query is added to the URL's own (httpx's params= would replace it).
            target = httpx.URL(url).copy_merge_params(dict(data.query)) if data.query else url
            answer = exchange(
                data.method,
                httpx.URL(target),
                headers=self._headers(),
                body=self._body(),
                timeout=httpx.Timeout(
                    connect=data.timeout.connect,
                    read=data.timeout.read,
                    write=data.timeout.read,
                    pool=data.timeout.connect,
                ),
                max_bytes=self.settings.max_response_bytes,
                wanted=data.is_expected,
                stop=self.ctx.is_cancelled,
            )
        except BodyTooLarge as exc:
            return _Outcome(error=PermanentError(
                f"{where}: the answer is larger than {exc.limit} bytes "
                "(HIVE_HTTP_MAX_RESPONSE_BYTES); refused"
            ))  # fmt: skip
        except Stopped:
            # Not the service's failure: the step's time is up, or its run ended.
            return _Outcome(error=PermanentError(
                f"{where}: stopped reading the answer: the step ran past its timeout or its "
                "run ended"
            ))  # fmt: skip
        except httpx.HTTPError as exc:
            return self._no_answer(where, exc)
        except httpx.InvalidURL as exc:
            # A registry instance's address stored before the registry checked it so: the
            # same every time. Its message names the host, never the query.
            return _Outcome(error=PermanentError(f"{where}: cannot send ({exc})"))
        self.ctx.logger.debug("%s answered %d in %.3fs", where, answer.status, answer.elapsed_s)
        if data.is_expected(answer.status):
            return _Outcome(output=self._output(answer, url))
        return self._refused(where, answer)

    def _no_answer(self, where: str, exc: httpx.HTTPError) -> _Outcome:
        import httpx

        detail = self._scrubbed(f"{type(exc).__name__}: {exc}")[:_EXCERPT_CHARS]
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            error: HiveError = TransientError(
                f"{where}: no answer within the read timeout of {self.data.timeout.read:g}s"
            )
        elif isinstance(exc, httpx.TransportError):
            error = TransientError(f"{where}: no answer ({detail})")
        else:  # a request httpx cannot build (an invalid URL): the same every time
            error = PermanentError(f"{where}: cannot send ({detail})")
        # Chained (its traceback is stored with the attempt), unless the library's message
        # held the credential, which it never should.
        error.__cause__ = exc if self._scrubbed(str(exc)) == str(exc) else None
        error.__suppress_context__ = True
        # A refused or timed-out connection never reached the service: another instance may.
        fail_over = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return _Outcome(error=error, fail_over=fail_over)

    def _refused(self, where: str, answer: Answer) -> _Outcome:
        status = f"{answer.status} {answer.reason}".strip()
        expected = ", ".join(map(str, self.data.expect)) if self.data.expect else "2xx"
        excerpt = self._excerpt(answer)
        said = f": {excerpt}" if excerpt else ""
        if answer.status >= 500 or answer.status == 429:
            wait_s = retry_after_s(answer.headers.get("retry-after"))
            after = f"; retry after {wait_s:g}s" if wait_s is not None else ""
            error: HiveError = TransientError(
                f"{where} answered {status}{after}{said}", retry_after_s=wait_s
            )
            return _Outcome(error=error, fail_over=answer.status >= 500)
        redirect = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
        return _Outcome(error=PermanentError(
            f"{where} answered {status}, expected {expected}{redirect}{said}"
        ))  # fmt: skip

    def _headers(self) -> httpx.Headers:
        import httpx

        ctx = self.ctx
        headers = httpx.Headers(self.data.headers)
        if self.cred is not None:
            headers[self.cred.header] = self.cred.value
        headers["X-Request-ID"] = f"{ctx.run_id}:{ctx.step_id}:{ctx.attempt}"
        if ctx.trace_id:
            headers["traceparent"] = f"00-{ctx.trace_id}-{_span_id()}-01"
        if self.data.text is not None and "content-type" not in headers:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        return headers

    def _body(self) -> dict[str, Any]:
        if "json_body" in self.data.model_fields_set:
            return {"json": self.data.json_body}
        if self.data.text is not None:
            return {"content": self.data.text.encode()}
        return {}

    def _output(self, answer: Answer, url: str) -> HttpOutput:
        headers: dict[str, str] = {}
        for name, value in answer.headers.multi_items():
            key = name.lower()
            if key not in _DROPPED_HEADERS:
                shown = self._scrubbed(value)
                headers[key] = f"{headers[key]}, {shown}" if key in headers else shown
        text: str | None = _decoded(answer) or None
        parsed: Any = None
        if text and _is_json(answer.headers.get("content-type", "")):
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                pass  # served as JSON but is not (or nested past reading): the text is it
            else:
                text = None
        return HttpOutput(
            status=answer.status,
            headers=headers,
            body=self._scrubbed(parsed),
            text=self._scrubbed(text),
            elapsed_s=round(answer.elapsed_s, 6),
            url=_address(url),
        )

    def _excerpt(self, answer: Answer) -> str:
        text = " ".join(_decoded(answer)[: _EXCERPT_CHARS * 4].split())
        text = "".join(c if c.isprintable() else "?" for c in self._scrubbed(text))
        return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"

    def _scrubbed(self, value: Any) -> Any:
        """``value`` (text, or JSON data) with the step's credential replaced, wherever."""
        if self.cred is None:
            return value
        if isinstance(value, str):
            return self.cred.scrub(value)
        if isinstance(value, dict):
            return {self.cred.scrub(k): self._scrubbed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrubbed(item) for item in value]
        return value


def _decoded(answer: Answer) -> str:
    try:
        return answer.body.decode(answer.encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        return answer.body.decode("utf-8", errors="replace")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _joined(address: str, path: str) -> str:
    """``path`` under the instance's address, which may have a base path of its own."""
    parts = urlsplit(address)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, query="", fragment=""))


def _address(url: str) -> str:
    """What a message or an output may show of a URL: no query, no fragment."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment=""))


def _tried(addresses: Sequence[str]) -> str:
    return "1 instance" if len(addresses) == 1 else f"{len(addresses)} instances"


def _span_id() -> str:
    span = secrets.token_hex(8)
    return span if span != "0" * 16 else "0" * 15 + "1"  # all zeros is invalid in W3C
