"""What an ``http`` step says (:class:`HttpInput`) and what it returns (:class:`HttpOutput`).

A pipeline file holds the input, and a run stores it: so credentials appear in it by the
NAME of an environment variable alone (``auth: {type: bearer, env: PARTNER_TOKEN}``), and
headers that carry credentials, or a URL with ``user:password@``, are refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hive.addresses import name_problems, url_problems
from hive.settings import credential_name_problem

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Scalar = str | int | float | bool

# RFC 9110 field names are tokens; values may not break the line (header injection).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN_VALUE = re.compile(r"[\r\n\x00]")
# What a header value may hold: visible ASCII, spaces and tabs.
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Headers that carry credentials belong in `auth`, whose value the pipeline never holds.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _problem(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _env_name(value: str) -> str:
    problem = credential_name_problem(value)
    if problem is not None:
        raise _problem("credential_env", problem)
    return value


def _header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise _problem("header_name", "a header name is letters, digits and !#$%&'*+.^_`|~-")
    return value


EnvName = Annotated[str, Field(description="an environment variable's name, never a value")]


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvName
    """The environment variable holding the secret, read on the worker at call time."""

    @field_validator("env")
    @classmethod
    def _env(cls, value: str) -> str:
        return _env_name(value)


class BearerAuth(_Auth):
    """``Authorization: Bearer <the variable's value>``."""

    type: Literal["bearer"]


class HeaderAuth(_Auth):
    """``<header>: <the variable's value>``, as with ``X-Api-Key``."""

    type: Literal["header"]
    header: str

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        return _header_name(value)


class BasicAuth(_Auth):
    """``Authorization: Basic`` of ``username`` and the variable's value as the password."""

    type: Literal["basic"]
    username: str = Field(min_length=1, max_length=200, pattern=r"^[^:\x00-\x1f\x7f]+$")


Auth = Annotated[BearerAuth | HeaderAuth | BasicAuth, Field(discriminator="type")]


class Timeouts(BaseModel):
    """Seconds to wait: for the connection, and for each read of the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    connect: float = Field(default=5.0, gt=0, le=300)
    read: float = Field(default=30.0, gt=0, le=3600)


class HttpInput(BaseModel):
    """One HTTP call: to ``url``, or to ``path`` on a passing instance of ``service``."""

    # populate_by_name off: the body field is spelt `json` in pipelines (see json_body).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: Method = "GET"
    url: str | None = None
    service: str | None = None
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    # `json` would shadow BaseModel.json; the pipeline writes `json:` all the same.
    json_body: JsonValue = Field(default=None, alias="json")
    text: str | None = None
    timeout: Timeouts = Field(default_factory=Timeouts)
    expect: list[int] | None = Field(default=None, min_length=1)
    """Statuses that are an answer (default: any 2xx); others fail the step."""
    auth: Auth | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        problems = url_problems(value, "url") if value is not None else []
        if problems:
            raise _problem("url", problems[0])
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        problems = name_problems(value, "service name") if value is not None else []
        if problems:
            raise _problem("service_name", problems[0])
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or _FORBIDDEN_VALUE.search(value) or " " in value:
            raise _problem("path", "a path starts with / and holds no spaces or line breaks")
        if "?" in value or "#" in value:
            raise _problem("path", "put the query in `query`, not in the path")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            _header_name(name)
            if name.lower() in _CREDENTIAL_HEADERS:
                raise _problem(
                    "credential_header",
                    f"header {name!r} carries credentials: give them with auth: "
                    "{type: bearer, env: VARIABLE} (or header, basic), whose value the "
                    "pipeline never holds",
                )
            if name.lower() == "host":
                # Behind a shared front end, Host picks the server that gets the request
                # (and its credential): where a call goes is url's or service's to say.
                raise _problem(
                    "host_header", "header 'Host' is refused: the host is the url's or service's"
                )
            if not HEADER_VALUE.fullmatch(value):
                raise _problem(
                    "header_value",
                    f"header {name!r}: a value holds visible ASCII, spaces and tabs alone",
                )
        return headers

    @field_validator("expect")
    @classmethod
    def _statuses(cls, expect: list[int] | None) -> list[int] | None:
        if expect is not None and any(not 100 <= status <= 599 for status in expect):
            raise _problem("status", "statuses are from 100 to 599")
        return expect

    @model_validator(mode="after")
    def _one_target_and_one_body(self) -> HttpInput:
        if (self.url is None) == (self.service is None):
            raise ValueError("give either url or service (with path), not both nor neither")
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError("path goes with service; with url, put the path in the url")
        if "json_body" in self.model_fields_set and self.text is not None:
            raise ValueError("give either json or text as the body, not both")
        header = self.auth.header if isinstance(self.auth, HeaderAuth) else "authorization"
        if header.lower() in (name.lower() for name in self.headers):
            raise ValueError(f"header {header!r} is set by auth; leave it out of headers")
        return self

    @property
    def has_body(self) -> bool:
        return "json_body" in self.model_fields_set or self.text is not None

    def is_expected(self, status: int) -> bool:
        return status in self.expect if self.expect is not None else 200 <= status < 300


class HttpOutput(BaseModel):
    """The answer: its status and headers, and its body as JSON (``body``) when it is JSON,
    else as text (``text``)."""

    model_config = ConfigDict(extra="forbid")

    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined by ", "; ``set-cookie`` left out."""
    body: JsonValue = None
    text: str | None = None
    elapsed_s: float
    url: str
    """The address called: scheme, host, port and path; no query, no credentials."""
