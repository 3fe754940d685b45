"""The HTTP API's JSON bodies read back as the service layer's views: the same dataclasses
a direct client returns, with their times as datetimes and their ids as UUIDs where the
views have them. ``tests/unit/test_api_models.py`` holds the API's bodies to exactly the
views' fields, so each view is the schema its body is checked against."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from hive.errors import ApiError

T = TypeVar("T")


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def parse(kind: type[T], body: Any) -> T:
    """``body`` as a ``kind`` (a view).

    Raises:
        ApiError: the body is not one (a proxy's answer, or an API of another version).
    """
    value: T = _validated(kind, kind, body)
    return value


def parse_list(kind: type[T], body: Any) -> list[T]:
    """``body`` as a list of ``kind``s. Raises ApiError as :func:`parse`."""
    value: list[T] = _validated(list[kind], kind, body)  # type: ignore[valid-type]
    return value


def _validated(schema: Any, kind: type[Any], body: Any) -> Any:
    try:
        return _adapter(schema).validate_python(body)
    except ValidationError as exc:
        name = getattr(kind, "__name__", str(kind))
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ApiError(200, "", f"the body is no {name}: {problems}") from None
