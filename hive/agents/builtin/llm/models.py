"""What an ``llm`` step takes and gives: the provider chain, the messages, the answer."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, SchemaError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from hive.addresses import name_problems, url_problems
from hive.settings import credential_name_problem

# Provider names label metrics and name the farm's limits and breakers ("model:<p>:<m>").
_PROVIDER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class Provider(BaseModel):
    """One OpenAI-compatible endpoint and model: the step's own, or one of its fallbacks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(
        pattern=_PROVIDER, description="a name for the provider (metrics, limits, breakers)"
    )
    base_url: str | None = Field(
        default=None,
        description="the API's base URL; the call goes to <base_url>/chat/completions",
    )
    service: str | None = Field(
        default=None,
        description="instead of base_url: a service of the registry, whose picked "
        "instance's URL is the base URL",
    )
    model: str = Field(min_length=1, max_length=200)
    api_key_env: str | None = Field(
        default=None,
        description="the NAME of the environment variable holding the API key, read on the "
        "worker at call time; none: no Authorization header",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            # The URL is stored with the step's input: a password in it would be too.
            raise ValueError("must not carry user:password@; name the key in api_key_env")
        problems = url_problems(value, "base_url")
        if problems:
            raise ValueError(problems[0])
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return value.rstrip("/")

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str | None) -> str | None:
        problems = name_problems(value, "service name") if value is not None else []
        if problems:
            raise ValueError(problems[0])
        return value

    @model_validator(mode="after")
    def _one_address(self) -> Provider:
        if (self.base_url is None) == (self.service is None):
            raise ValueError("give either base_url or service, not both nor neither")
        return self

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        problem = credential_name_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def resource_name(self) -> str:
        """``<provider>:<model>``: what the farm's limits and breakers key on."""
        return f"{self.provider}:{self.model}"


class Message(BaseModel):
    """One chat message. ``content`` is text; a list is joined line by line, and any other
    JSON value (a step's output, say) is written as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: JsonValue

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(_as_text(part) for part in self.content)
        return _as_text(self.content)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class LlmInput(Provider):
    """An ``llm`` step's input; its provider fields name the first endpoint tried."""

    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="each call's connect and read timeout"
    )
    output_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema the answer must fit: it is parsed as JSON, validated, and "
        "the model asked again with the error, up to max_repairs times",
    )
    max_repairs: int = Field(default=2, ge=0, le=10)
    fallback: list[Provider] = Field(
        default_factory=list,
        max_length=10,
        description="tried in order when a provider answers 5xx or 429, times out, cannot "
        "be reached, or the farm defers calls to it (its breaker is open)",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                where = ".".join(str(p) for p in exc.absolute_path)
                raise ValueError(
                    f"not a valid JSON Schema at {where or 'top'}: {exc.message}"
                ) from None
        return value

    def chain(self) -> list[Provider]:
        """The endpoints in the order they are tried."""
        first = Provider(
            provider=self.provider,
            base_url=self.base_url,
            service=self.service,
            model=self.model,
            api_key_env=self.api_key_env,
        )
        return [first, *self.fallback]


class LlmUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0


class LlmOutput(BaseModel):
    """The answer, and which endpoint gave it."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(description="the answer's text")
    data: JsonValue = Field(
        default=None, description="the answer parsed as JSON, with output_schema; else null"
    )
    provider: str
    model: str
    finish_reason: str | None = None
    usage: LlmUsage = Field(description="tokens of every call this step made")
    cost: float | None = Field(
        default=None, description="their cost by the price table; null: a model it lacks"
    )
    calls: int = Field(description="calls that got an answer (repairs included)")
    repairs: int = Field(description="times the model was asked again to fit output_schema")
