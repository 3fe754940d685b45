"""The HTTP transport: the client's operations as calls of Hive's HTTP API (``hive api``),
over one keep-alive :class:`httpx.Client`. ``Client(base_url=..., api_key=...)``.

Errors come back as the :mod:`hive.errors` a direct client raises
(:mod:`hive.client.http_errors`); bodies as the service layer's views
(:mod:`hive.client.wire`). A request that fails before it reaches the API (no connection)
is sent once more; so are reads, and a submit, whose answer may have been lost after the
run was stored: it carries an idempotency key (one is made when the caller gave none), so
the second attempt finds the run the first one stored instead of starting another.

The API key goes in the ``Authorization`` header alone: it is in no repr, log record or
exception message.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from hive.client.http_errors import api_address, error_from, unavailable
from hive.client.transport import RunId
from hive.client.wire import parse, parse_list
from hive.errors import (
    ApiError,
    InputError,
    InvalidArgument,
    NoPassingInstance,
    NotAvailableOverHttp,
)
from hive.jsondata import unstorable
from hive.service.arguments import parse_run_id
from hive.service.views import (
    ApprovalView,
    DeadLetterView,
    PipelineView,
    RunPage,
    RunState,
    RunView,
    ServiceInstanceView,
    final_output,
    wait_timed_out,
)
from hive.statuses import FINAL_RUN_STATUSES, ServiceStatus

logger = logging.getLogger(__name__)

WAIT_MAX_S = 60.0
"""The longest long poll the API holds (``GET /v1/runs/{id}/wait``): longer waits loop."""

IDEMPOTENCY_PREFIX = "hive-client:"
"""Of the keys made for submits that gave none (the API's answer shows no key)."""

_IDEMPOTENT = frozenset({"GET", "PUT"})


class HttpTransport:
    """Calls the HTTP API at ``base_url`` with ``api_key``.

    Args:
        timeout_s: how long one request may take (a long poll: that much more than it holds).

    Raises:
        InvalidArgument: ``base_url`` is no http(s) URL, or ``api_key`` is empty.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0) -> None:
        problems = []
        url = httpx.URL(base_url) if isinstance(base_url, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            problems.append("base_url must be an http:// or https:// URL")
        if not isinstance(api_key, str) or not api_key.strip():
            problems.append("api_key must be an API key (hive keys create)")
        if not isinstance(timeout_s, int | float) or not timeout_s > 0:
            problems.append("timeout_s must be a number of seconds above zero")
        if problems:
            raise InvalidArgument(problems)
        assert url is not None
        self.base_url = api_address(url) + url.path.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key.strip()}"},
            timeout=self.timeout_s,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<HttpTransport {self.base_url}>"

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        pipeline: str | None = None,
        retry: bool | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """The answer's JSON body (None for a 204); the error it stands for, raised."""
        again = method in _IDEMPOTENT if retry is None else retry
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for attempt in (1, 2):
            try:
                response = self._http.request(
                    method, path, json=json, params=query, timeout=timeout_s or self.timeout_s
                )
            except httpx.TransportError as exc:
                # Not connected: the request was never sent, whatever it was.
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt == 1 and (again or unsent):
                    logger.warning("%s %s: %s; sending it once more", method, path,
                                   type(exc).__name__)  # fmt: skip
                    continue
                raise unavailable(self._http.base_url, _describe(exc)) from exc
            if not response.is_success:  # a redirect too: the API sends none
                raise error_from(response, pipeline=pipeline)
            if response.status_code == 204:
                return None
            try:
                return response.json()
            except ValueError:
                raise ApiError(response.status_code, "", "the answer is not JSON") from None
        raise AssertionError("unreachable")  # pragma: no cover

    # Runs.
    def submit(
        self,
        pipeline: str,
        input: Any,
        *,
        tenant: str | None,
        priority: str,
        idempotency_key: str | None,
        deadline: float | None,
        budget_usd: float | None,
    ) -> uuid.UUID:
        body = {
            "pipeline": pipeline,
            "input": input,
            "tenant": tenant,
            "priority": priority,
            # Made here, not by the API: a retry must carry the key the lost attempt did.
            "idempotency_key": idempotency_key or f"{IDEMPOTENCY_PREFIX}{uuid.uuid4()}",
            "deadline_s": deadline,
            "budget_usd": budget_usd,
        }
        sent = {k: v for k, v in body.items() if v is not None or k == "input"}
        _check_sendable(pipeline, sent)
        answer = self._call("POST", "/v1/runs", json=sent, pipeline=pipeline, retry=True)
        return uuid.UUID(parse(RunView, answer).id)

    def get(self, run_id: RunId) -> RunView:
        return parse(RunView, self._call("GET", _run_path(run_id)))

    def state(self, run_id: RunId) -> RunState:
        return _state(self.get(run_id))

    def wait(self, run_id: RunId, timeout: float | None, poll_s: float) -> Any:
        """Long polls of at most :data:`WAIT_MAX_S` each until the run ends or ``timeout``
        passes (``poll_s``: the API polls, at its own pace)."""
        path = _run_path(run_id) + "/wait"
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_MAX_S if deadline is None else deadline - time.monotonic()
            hold = round(min(max(left, 0.01), WAIT_MAX_S), 3)
            answer = self._call(
                "GET", path, params={"timeout_s": hold}, timeout_s=hold + self.timeout_s
            )
            view = parse(RunView, answer)
            if view.status in FINAL_RUN_STATUSES:
                return final_output(_state(view))
            if deadline is not None and time.monotonic() >= deadline:
                raise wait_timed_out(uuid.UUID(view.id), view.status, timeout)

    def cancel(self, run_id: RunId) -> bool:
        # Not sent twice: a second cancel would answer False for the run the first one ended.
        return bool(self._call("POST", _run_path(run_id) + "/cancel")["cancelled"])

    def list_page(
        self,
        *,
        status: str | None,
        pipeline: str | None,
        limit: int,
        cursor: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> RunPage:
        params = {
            "status": status, "pipeline": pipeline, "limit": limit, "cursor": cursor,
            "created_after": _time(created_after, "created_after"),
            "created_before": _time(created_before, "created_before"),
        }  # fmt: skip
        answer = self._call("GET", "/v1/runs", params=params)
        return RunPage(parse_list(RunView, answer.get("runs")), answer.get("next_cursor"))

    # Pipelines.
    def pipelines(self) -> dict[str, PipelineView]:
        found = parse_list(PipelineView, self._call("GET", "/v1/pipelines"))
        return {pipeline.name: pipeline for pipeline in found}

    def pipeline(self, name: str) -> PipelineView:
        return parse(PipelineView, self._call("GET", f"/v1/pipelines/{_segment(name)}"))

    # Dead letters.
    def dead_letters(
        self, *, pipeline: str | None, since: datetime | None, limit: int
    ) -> list[DeadLetterView]:
        params = {"pipeline": pipeline, "since": _time(since, "since"), "limit": limit}
        return parse_list(DeadLetterView, self._call("GET", "/v1/dead-letters", params=params))

    def replay(
        self, run_id: RunId, input: dict[str, Any] | None, deadline: float | None
    ) -> list[str]:
        path = f"/v1/dead-letters/{parse_run_id(run_id)}/replay"
        body = {k: v for k, v in {"input": input, "deadline_s": deadline}.items() if v is not None}
        _check_finite(body)
        answer = self._call("POST", path, json=body or None)
        return [str(step) for step in answer["sent"]]

    # Approvals.
    def approvals(self, *, pipeline: str | None, limit: int) -> list[ApprovalView]:
        params = {"pipeline": pipeline, "limit": limit}
        return parse_list(ApprovalView, self._call("GET", "/v1/approvals", params=params))

    def approval(self, run_id: RunId, step_id: str) -> ApprovalView:
        raise NotAvailableOverHttp("reading one approval (approvals.get)")

    def approve(
        self, run_id: RunId, step_id: str, *, input: dict[str, Any] | None, by: str | None
    ) -> ApprovalView:
        _no_by(by)
        body = {"input": input} if input is not None else None
        return parse(ApprovalView, self._call("POST", _step_path(run_id, step_id, "approve"),
                                              json=body))  # fmt: skip

    def reject(self, run_id: RunId, step_id: str, *, reason: str, by: str | None) -> ApprovalView:
        _no_by(by)
        path = _step_path(run_id, step_id, "reject")
        return parse(ApprovalView, self._call("POST", path, json={"reason": reason}))

    # The service registry.
    def register_service(
        self,
        name: str,
        url: str,
        *,
        health_url: str | None,
        ttl_s: float | None,
        deregister_after_s: float | None,
        meta: dict[str, str] | None,
        instance_id: str | None,
    ) -> str:
        body = {
            "name": name, "url": url, "id": instance_id, "health_url": health_url,
            "ttl_s": ttl_s, "deregister_after_s": deregister_after_s, "meta": meta,
        }  # fmt: skip
        sent = {k: v for k, v in body.items() if v is not None}
        # Sent again on a lost answer only with an id: without one, a second instance.
        answer = self._call("POST", "/v1/services", json=sent, retry=instance_id is not None)
        return parse(ServiceInstanceView, answer).id

    def heartbeat(self, instance_id: str) -> ServiceInstanceView:
        path = f"/v1/services/instances/{_segment(instance_id)}/heartbeat"
        return parse(ServiceInstanceView, self._call("PUT", path))

    def deregister(self, instance_id: str) -> None:
        self._call("DELETE", f"/v1/services/instances/{_segment(instance_id)}")

    def instance(self, instance_id: str) -> ServiceInstanceView:
        path = f"/v1/services/instances/{_segment(instance_id)}"
        return parse(ServiceInstanceView, self._call("GET", path))

    def instances(self, name: str, *, status: str | None) -> list[ServiceInstanceView]:
        answer = self._call("GET", f"/v1/services/{_segment(name)}", params={"status": status})
        return parse_list(ServiceInstanceView, answer)

    def pick(self, name: str) -> ServiceInstanceView:
        found = self.instances(name, status=None)
        passing = [i for i in found if i.status == ServiceStatus.PASSING]
        if not passing:
            raise NoPassingInstance(name, dict(Counter(str(i.status) for i in found)))
        return random.choice(passing)  # spreads the callers' load, as the service's pick


def _state(view: RunView) -> RunState:
    return RunState(id=uuid.UUID(view.id), status=view.status, output=view.output,
                    error=view.error, tenant=view.tenant)  # fmt: skip


def _run_path(run_id: RunId) -> str:
    # Checked here as the service checks it: text that is no UUID names no run.
    return f"/v1/runs/{parse_run_id(run_id)}"


def _step_path(run_id: RunId, step_id: str, decision: str) -> str:
    if not isinstance(step_id, str) or not step_id:
        raise InvalidArgument([f"step_id must be a step id, not {step_id!r}"])
    return f"{_run_path(run_id)}/steps/{_segment(step_id)}/{decision}"


def _segment(text: str) -> str:
    """``text`` as one path segment: a ``/`` in a name cannot reach another route, nor can
    ``.`` or ``..``, which the URL would resolve away before sending (RFC 3986)."""
    if not isinstance(text, str):
        raise InvalidArgument([f"a name is text, not {type(text).__name__}"])
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def _time(value: datetime | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidArgument([f"{name} must be a datetime with a time zone"])
    return value.isoformat()


def _check_sendable(pipeline: str, body: dict[str, Any]) -> None:
    """Refuse what JSON cannot carry as a direct submit refuses it, before anything is sent.

    Raises:
        InputError: the input holds a value JSON has no form for (names each field).
        InvalidArgument: a number argument that is not finite.
    """
    try:
        json.dumps(body["input"], allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        try:
            problems = unstorable(body["input"], "input")
        except RecursionError:
            problems = []
        raise InputError(pipeline, problems or ["input: nested too deep to send"]) from None
    _check_finite(body)


def _check_finite(body: dict[str, Any]) -> None:
    """Refuse a number argument JSON cannot carry (NaN, infinity), naming it.

    Raises:
        InvalidArgument: a number argument that is not finite.
    """
    unfit = [
        f"{name} must be a finite number, not {value!r}"
        for name, value in body.items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    if unfit:
        raise InvalidArgument(unfit)


def _no_by(by: str | None) -> None:
    if by is not None:
        raise InvalidArgument(
            ["by: over HTTP a decision is recorded as the API key's (key:<id>); leave by out"]
        )


def _describe(exc: httpx.TransportError) -> str:
    # The class names the fault (ConnectError, ReadTimeout...); the text adds the OS's
    # reason. Neither holds a header, so never the key.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
