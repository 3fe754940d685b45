"""Hive's errors as HTTP answers, one JSON shape for all: ``{"error": {"type", "message",
"problems"?}}``.

::

    401 unauthorized   no key, or a bad one (never which)      AuthenticationFailed
    403 forbidden      the key's role lacks the right          PermissionDenied
    404 not_found      no such run (or another tenant's)       RunNotFound, UnknownPipeline...
    413 too_large      the body is over HIVE_API_MAX_BODY_BYTES  (hive.api.middleware)
    422 invalid        each problem with where it is           RequestValidationError, InputError
    429 rate_limited   the tenant's request rate is spent,     TooManyRequests (Retry-After)
                       or the address failed auth too often
    429 too_many_runs  the tenant's runs in flight are at the cap  TooManyRunsInFlight
    429 too_many_instances  its service instances are at the cap  TooManyServiceInstances
    503 unavailable    PostgreSQL or Redis cannot be reached,  ServiceUnavailable...
                       or the pipeline's file cannot be loaded  PipelineError
                       or PostgreSQL gave up on a statement     StatementCanceled
    500 internal       a bug: logged here, nothing said        (hive.api.middleware)

No body holds a stack trace, a server's address or a value the client sent (a
``DispatchError``'s 409 says which steps, not the broker's words).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hive.errors import (
    ApiKeyNotFound,
    ApprovalNotFound,
    AuthenticationFailed,
    BrokenPipeline,
    DatabaseNotMigrated,
    DispatchError,
    HiveError,
    InputError,
    InvalidArgument,
    PermissionDenied,
    PipelineError,
    RunNotFound,
    ServiceInstanceNotFound,
    ServiceUnavailable,
    SettingsError,
    StatementCanceled,
    TooManyRequests,
    TooManyRunsInFlight,
    TooManyServiceInstances,
    UnknownPipeline,
)

logger = logging.getLogger(__name__)

Problem = tuple[str, str, str]
"""Where (``body``, ``query``, ``path``), the dotted path there, and what is wrong."""


class Unprocessable(Exception):
    """A request the API refuses with 422, naming each problem's place."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(problems)
        self.problems = list(problems)


def error_body(kind: str, message: str, problems: Sequence[Problem] | None = None) -> Any:
    detail: dict[str, Any] = {"type": kind, "message": message}
    if problems is not None:
        detail["problems"] = [
            {"in": where, "path": path, "message": text} for where, path, text in problems
        ]
    return {"error": detail}


def answer(
    status: int,
    kind: str,
    message: str,
    problems: Sequence[Problem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(kind, message, problems), status_code=status, headers=headers)


def input_problems(exc: InputError, where: str = "body") -> list[Problem]:
    """An InputError's problems (``input.items.2: ...``) with their paths apart."""
    found = []
    for problem in exc.problems:
        path, sep, text = problem.partition(": ")
        found.append((where, path, text) if sep else (where, "input", problem))
    return found


Place = tuple[str, str]
"""Where a request has a parameter: ``body``, ``query`` or ``path``, and its name there."""


def located(problems: Sequence[str], places: Mapping[str, Place]) -> list[Problem]:
    """The service's problems, each at the place of the parameter it starts by naming
    (``places``: the service's name for it, ``instance id``, to the request's); one that
    names none is the body's as a whole."""
    found = []
    for problem in problems:
        where, path = next(
            (place for name, place in places.items() if re.match(rf"{re.escape(name)}\b", problem)),
            ("body", ""),
        )
        found.append((where, path, problem))
    return found


@contextmanager
def problems_at(places: Mapping[str, Place]) -> Iterator[None]:
    """The block's InvalidArgument as a 422 naming each problem's place (:func:`located`)."""
    try:
        yield
    except InvalidArgument as exc:
        raise Unprocessable(located(exc.problems, places)) from None


_NOT_FOUND = (
    RunNotFound, UnknownPipeline, ApiKeyNotFound, ApprovalNotFound, ServiceInstanceNotFound,
)  # fmt: skip


def hive_error_response(exc: BaseException) -> JSONResponse:
    """The answer to one of Hive's errors (or a ValueError of the service's checks)."""
    if isinstance(exc, AuthenticationFailed):
        return answer(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PermissionDenied):
        return answer(403, "forbidden", str(exc))
    if isinstance(exc, _NOT_FOUND):
        return answer(404, "not_found", str(exc))
    if isinstance(exc, TooManyRequests):
        return _too_many(exc)
    if isinstance(exc, InputError):
        return answer(422, "invalid", str(exc), input_problems(exc))
    if isinstance(exc, InvalidArgument):
        return answer(422, "invalid", str(exc), [("body", "", p) for p in exc.problems])
    if isinstance(exc, StatementCanceled):
        # The database is up: a lock or statement timeout (its detail names tables).
        logger.warning("answering 503: %s", exc)
        said = "the database gave up on a statement (a lock or statement timeout)"
        return answer(503, "unavailable", f"{said}; try again later", headers={"Retry-After": "5"})
    if isinstance(exc, ServiceUnavailable | DatabaseNotMigrated | SettingsError | PipelineError):
        # Never the detail: it names hosts and ports, or the farm's files, which are the
        # operator's to fix (the log has it).
        if isinstance(exc, BrokenPipeline):
            logger.warning("answering 503: %s", exc)  # the other pipelines are served
            said = "the farm cannot load that pipeline's file"
        elif isinstance(exc, PipelineError):
            logger.warning("answering 503: the pipelines cannot be loaded:\n%s", exc)
            said = "the farm's pipelines cannot be loaded"
        else:
            logger.warning("answering 503: %s", exc)
            said = "a server Hive needs cannot be reached"
        return answer(503, "unavailable", f"{said}; try again later", headers={"Retry-After": "5"})
    if isinstance(exc, ValueError):
        return answer(422, "invalid", str(exc), [("body", "", str(exc))])
    if isinstance(exc, DispatchError):
        # The broker's own words name its host and port: the log has them, not the caller.
        logger.warning("answering 409: %s", exc)
        steps = ", ".join(repr(s) for s in exc.step_ids)
        told = (
            f"step {steps}: the farm could not send it to its workers; it failed and is"
            if len(exc.step_ids) == 1
            else f"steps {steps}: the farm could not send them to its workers; they failed and are"
        )
        return answer(
            409, "conflict", f"run {exc.run_id}: could not dispatch {told} in the dead letters"
        )
    return answer(409, "conflict", str(exc))


def _too_many(exc: TooManyRequests) -> JSONResponse:
    headers = {"Retry-After": str(max(math.ceil(exc.retry_after_s), 1))}
    if exc.limit:
        headers |= {
            "RateLimit-Limit": str(exc.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(exc.reset_s),
        }
    kind = "rate_limited"
    if isinstance(exc, TooManyRunsInFlight):
        kind = "too_many_runs"
    elif isinstance(exc, TooManyServiceInstances):
        kind = "too_many_instances"
    return answer(429, kind, str(exc), headers=headers)


def _validation_problems(exc: RequestValidationError) -> list[Problem]:
    found = []
    for error in exc.errors():
        loc = list(error.get("loc", ())) or ["body"]
        # A body that is not JSON: the location is a character offset, not a field.
        rest = [] if error.get("type") == "json_invalid" else loc[1:]
        path = ".".join(str(part) for part in rest)
        found.append((str(loc[0]), path, str(error.get("msg", "invalid"))))
    return found


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_hive_error(_request: Request, exc: Exception) -> JSONResponse:
        return hive_error_response(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = _validation_problems(exc)
        return answer(422, "invalid", "the request does not fit (see problems)", problems)

    async def on_unprocessable(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Unprocessable)
        message = "; ".join(f"{path}: {text}" if path else text for _, path, text in exc.problems)
        return answer(422, "invalid", message, exc.problems)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        return answer(exc.status_code, kind, str(exc.detail), headers=dict(exc.headers or {}))

    app.add_exception_handler(HiveError, on_hive_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Unprocessable, on_unprocessable)
    app.add_exception_handler(HTTPException, on_http)


def _described(description: str) -> dict[str, Any]:
    from hive.api.models import ErrorOutput

    return {"model": ErrorOutput, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _described("No API key, or a bad one."),
    403: _described("The key's role lacks the right."),
    404: _described("Not found (or another tenant's)."),
    413: _described("The body is too large."),
    422: _described("The request does not fit: each problem with its place."),
    429: _described(
        "The tenant's request rate is spent (`Retry-After`, `RateLimit-*`), or, on submit, "
        "its runs in flight are at the cap (`too_many_runs`), or, on registering a service "
        "instance, its instances are (`too_many_instances`), or the client's address failed "
        "authentication too often (`Retry-After`)."
    ),
    503: _described("PostgreSQL or Redis cannot be reached, or the pipeline files loaded."),
}
"""The error answers every /v1 route may give, for the OpenAPI document."""
