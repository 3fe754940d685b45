"""The API's error answers say what a client may know and nothing more."""

from __future__ import annotations

import json

import pytest

from hive.api.errors import hive_error_response
from hive.errors import (
    AuthenticationFailed,
    InputError,
    PermissionDenied,
    RunNotFound,
    ServiceUnavailable,
    SettingsError,
)
from hive.settings import ApiSettings


def _answer(exc: Exception) -> tuple[int, dict[str, object]]:
    response = hive_error_response(exc)
    return response.status_code, json.loads(bytes(response.body))["error"]


def test_a_server_that_cannot_be_reached_is_503_without_its_address() -> None:
    status, error = _answer(
        ServiceUnavailable("HIVE_DATABASE_URL", "could not connect to db.internal:5432")
    )

    assert status == 503
    assert "internal" not in json.dumps(error) and "5432" not in json.dumps(error)
    assert _answer(SettingsError("HIVE_BROKER_URL", "redis://secret@host"))[0] == 503


def test_each_error_has_its_status() -> None:
    assert _answer(AuthenticationFailed())[0] == 401
    assert _answer(PermissionDenied("viewer", "submit runs"))[0] == 403
    assert _answer(RunNotFound("x"))[0] == 404
    status, error = _answer(InputError("p", ["input.items.2.name: 5 is not of type 'string'"]))
    assert status == 422
    assert error["problems"] == [
        {"in": "body", "path": "input.items.2.name", "message": "5 is not of type 'string'"}
    ]


@pytest.mark.parametrize("origins", ["*", "app.example.com", "https://app.example.com/path"])
def test_cors_origins_must_be_origins(origins: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        ApiSettings(cors_origins=origins)


def test_a_short_pepper_is_refused_and_an_empty_one_is_none() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        ApiSettings(key_pepper="short")
    assert ApiSettings(key_pepper="").key_pepper is None
