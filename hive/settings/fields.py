"""How a setting is declared: its ``HIVE_*`` variable, the sections' shared configuration,
and the checks several sections use.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "HIVE_"


def var(name: str, description: str, **constraints: Any) -> Any:
    """A field read from the variable ``HIVE_<NAME>``, whatever the field is called in code."""
    return Field(
        validation_alias=AliasChoices(f"{PREFIX}{name}"),
        description=description,
        **constraints,
    )


class Section(BaseSettings):
    # No inf/nan: an infinite interval or timeout would stall beat or a lease forever.
    # populate_by_name: tests and embedders may build a section by field name.
    model_config = SettingsConfigDict(
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
        case_sensitive=False,
        populate_by_name=True,
    )


def split_list(listed: str) -> list[str]:
    return [item.strip() for item in listed.split(",") if item.strip()]


def not_blank(value: object) -> object:
    """A path setting given as blank text: refused (``Path("")`` is the working directory)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


_TLS_QUERY = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_CERT_REQS = ("none", "optional", "required")


def check_redis_url(value: str) -> None:
    """A redis:// or rediss:// URL's shape; Hive's own clients (redis-py) read it too."""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("must be a redis:// or rediss:// URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has a port that is not a number from 1 to 65535")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("must end in a database number, like redis://localhost:6379/0")
    # Celery's kombu takes no query parameter but ssl_* ones (any other stops every publish
    # with a TypeError), and redis-py, Hive's own client, takes those only over TLS.
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in _TLS_QUERY:
            raise ValueError(
                f"has a query parameter {key!r} that Celery cannot take; the only ones are "
                f"{', '.join(_TLS_QUERY)} (with rediss://)"
            )
        if parts.scheme != "rediss":
            raise ValueError(f"sets {key}, but {key} is for rediss:// (TLS) URLs only")
        if key == "ssl_cert_reqs" and values[-1] not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be {', '.join(_CERT_REQS)}")


# An environment variable's name as a shell would accept it.
CREDENTIAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


CREDENTIAL_NAME_MAX_CHARS = 200
