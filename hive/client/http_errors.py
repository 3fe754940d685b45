"""The HTTP API's error answers as the :mod:`hive.errors` a direct client raises: the one
place that reads a status and its body (``{"error": {"type", "message", "problems"?}}``,
see :mod:`hive.api.errors`) back into an exception.

The API writes each of Hive's errors with its ``str()``, which this module parses back into
the same class with the same arguments (``tests/unit/test_http_errors.py`` checks each one
round trips through the API's own answer). A body that is not the API's (a proxy's page)
is an :class:`~hive.errors.ApiError`; no message holds the request's API key, which no
answer carries.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

import httpx

from hive.errors import (
    ApiError,
    ApprovalError,
    ApprovalNotFound,
    AuthenticationFailed,
    HiveError,
    InputError,
    InvalidArgument,
    PermissionDenied,
    ReplayError,
    RunNotFound,
    ServiceInstanceNotFound,
    ServiceUnavailable,
    TooManyRequests,
    TooManyRunsInFlight,
    TooManyServiceInstances,
    UnknownPipeline,
)

_QUOTED = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
"""A text as ``repr()`` writes it, which the messages name things with."""

_PERMISSION = re.compile(
    rf"permission denied: role (?P<role>{_QUOTED}) may not (?P<action>.+)", re.S
)
_UNKNOWN_PIPELINE = re.compile(
    rf"unknown pipeline (?P<name>{_QUOTED}); known pipelines: (?P<known>.*)", re.S
)
_NO_APPROVAL = re.compile(rf"no approval of step (?P<step>{_QUOTED}) of run (?P<run>\S+)", re.S)
_NO_INSTANCE = re.compile(rf"no service instance with id (?P<id>{_QUOTED})", re.S)
_NO_RUN = re.compile(r"no run with id (?P<run>.*)", re.S)
_APPROVAL = re.compile(rf"step (?P<step>{_QUOTED}) of run (?P<run>\S+): (?P<reason>.*)", re.S)
_REPLAY = re.compile(r"cannot replay run (?P<run>\S+): (?P<reason>.*)", re.S)
_IN_FLIGHT = re.compile(
    rf"(?:tenant (?P<tenant>{_QUOTED})|runs of no tenant) has (?P<cap>\d+) runs in flight", re.S
)
_INSTANCES = re.compile(
    rf"(?:tenant (?P<tenant>{_QUOTED})|the farm \(no tenant\)) has (?P<cap>\d+) service "
    "instances registered",
    re.S,
)


def error_from(response: httpx.Response, *, pipeline: str | None = None) -> HiveError:
    """The exception a direct client raises where the API answered ``response`` (an error).

    Args:
        pipeline: the pipeline a submit named: an input that does not fit is an
            :class:`~hive.errors.InputError` of it.
    """
    status = response.status_code
    kind, message, problems = _detail(response)
    if status in (502, 503, 504):
        # The API's own 503, or a proxy's: the API cannot answer now; try again later.
        return unavailable(response.request.url, message or f"{status} {response.reason_phrase}",
                           response.headers.get("retry-after"))  # fmt: skip
    if kind is None:
        return ApiError(status, "", f"{response.reason_phrase} (not an answer of Hive's API)")
    if status == 401:
        return AuthenticationFailed()
    if status == 403:
        return _permission_denied(message)
    if status == 404:
        return _not_found(message) or ApiError(status, kind, message)
    if status == 409:
        return _conflict(message) or ApiError(status, kind, message)
    if status == 413:
        if pipeline is not None:
            return InputError(pipeline, [f"input: {message}"])
        return InvalidArgument([message])
    if status == 422:
        return _invalid(message, problems, pipeline)
    if status == 429:
        return _too_many(kind, message, response.headers)
    return ApiError(status, kind, message)


def unavailable(url: httpx.URL, detail: str, retry_after: str | None = None) -> ServiceUnavailable:
    """The API, or a server behind it, cannot be reached; names the API's address (never
    its credentials, nor the request's path)."""
    return ServiceUnavailable(api_address(url), detail, _seconds(retry_after))


def api_address(url: httpx.URL) -> str:
    """``scheme://host:port`` of ``url``: no user name or password, no path or query."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _detail(response: httpx.Response) -> tuple[str | None, str, list[dict[str, str]]]:
    try:
        body = response.json()
    except ValueError:
        return None, "", []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None, "", []
    problems = [p for p in error.get("problems") or [] if isinstance(p, dict)]
    return str(error.get("type", "")), error["message"], problems


def _text(quoted: str) -> str:
    """A name as ``repr()`` wrote it in the message, back as the name."""
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return quoted.strip("'\"")
    return str(value)


def _permission_denied(message: str) -> PermissionDenied:
    found = _PERMISSION.fullmatch(message)
    if found is None:
        return PermissionDenied("unknown", message)
    return PermissionDenied(_text(found["role"]), found["action"])


def _unknown_pipeline(message: str) -> UnknownPipeline | None:
    found = _UNKNOWN_PIPELINE.fullmatch(message)
    if found is None:
        return None
    known = [] if found["known"] == "none" else found["known"].split(", ")
    return UnknownPipeline(_text(found["name"]), known)


def _not_found(message: str) -> HiveError | None:
    if found := _NO_APPROVAL.fullmatch(message):
        return ApprovalNotFound(found["run"], _text(found["step"]))
    if found := _NO_INSTANCE.fullmatch(message):
        return ServiceInstanceNotFound(_text(found["id"]))
    if found := _NO_RUN.fullmatch(message):
        return RunNotFound(found["run"])
    return _unknown_pipeline(message)


def _conflict(message: str) -> HiveError | None:
    if found := _REPLAY.fullmatch(message):
        return ReplayError(found["run"], found["reason"])
    if found := _APPROVAL.fullmatch(message):
        return ApprovalError(found["run"], _text(found["step"]), found["reason"])
    return None


def _invalid(message: str, problems: list[dict[str, str]], pipeline: str | None) -> HiveError:
    if not problems:
        return InvalidArgument([message])
    for problem in problems:
        if problem.get("path") == "pipeline" and (known := _unknown_pipeline(problem["message"])):
            return known
    described = [_described(p) for p in problems]
    paths = [str(p.get("path", "")) for p in problems]
    if pipeline is not None and all(p == "input" or p.startswith("input.") for p in paths):
        return InputError(pipeline, described)
    return InvalidArgument(described)


def _described(problem: dict[str, Any]) -> str:
    path, text = str(problem.get("path", "")), str(problem.get("message", ""))
    # A service's message names its argument already ("tenant contains ...", "service
    # name 'x' must ...", "deadline must ..." of deadline_s): as a direct client has it.
    spellings = {path, path.replace("_", " "), path.removesuffix("_s")}
    names = "|".join(re.escape(name) for name in spellings)
    if not path or re.match(rf"(\w+ )?({names})\b", text):
        return text
    return f"{path}: {text}"


def _too_many(kind: str, message: str, headers: httpx.Headers) -> TooManyRequests:
    if kind == "too_many_runs" and (found := _IN_FLIGHT.match(message)):
        tenant = None if found["tenant"] is None else _text(found["tenant"])
        return TooManyRunsInFlight(tenant, int(found["cap"]))
    if kind == "too_many_instances" and (found := _INSTANCES.match(message)):
        tenant = None if found["tenant"] is None else _text(found["tenant"])
        return TooManyServiceInstances(tenant, int(found["cap"]))
    return TooManyRequests(
        _seconds(headers.get("retry-after")) or 1.0,
        message,
        limit=_integer(headers.get("ratelimit-limit")),
        reset_s=_integer(headers.get("ratelimit-reset")),
    )


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: none of Hive's answers, so a proxy's; wait the default
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def _integer(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
