"""The rules for the addresses of outside services: a service name and an http(s) URL.

The service registry checks what it stores with them and the ``http`` agent checks a step's
``url`` and ``service`` with them, so a URL the registry refuses is refused in a pipeline too.
Each check returns one line per problem (empty: none) and never raises. A URL must also be
one httpx (the agents' client) can send to.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

NAME_MAX_CHARS = 200  # the width of service_instances.service and .id (hive/db/models.py)
URL_MAX_CHARS = 2000

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
# A host of ASCII letters, digits, dots and hyphens, and a port of digits: httpx takes such a
# host as it is (an IPv4 address if it is four numbers, which ipaddress checks as httpx does).
_PLAIN_NETLOC = re.compile(r"(?P<host>[A-Za-z0-9.-]+)(?::[0-9]*)?")
_IPV4_STYLE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def name_problems(value: Any, what: str) -> list[str]:
    """A service name or an instance id: letters, digits, ``_ . : -``, at most 200."""
    if not isinstance(value, str):
        return [f"{what} must be text, not {type(value).__name__}"]
    if not value or len(value) > NAME_MAX_CHARS or not _NAME.fullmatch(value):
        shown = value if len(value) <= 60 else value[:59] + "…"
        return [
            f"{what} {shown!r} must be 1 to {NAME_MAX_CHARS} letters, digits or _ . : - "
            "(starting with a letter or digit)"
        ]
    return []


def url_problems(value: Any, what: str) -> list[str]:
    """An http or https URL with a host and no ``user:password@``: whatever holds it (the
    registry, a run's stored input) is read by people who must not learn a secret."""
    if not isinstance(value, str):
        return [f"{what} must be text, not {type(value).__name__}"]
    if len(value) > URL_MAX_CHARS:
        return [f"{what} is longer than {URL_MAX_CHARS} characters"]
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return [f"{what} must not contain spaces or control characters"]
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # "Invalid IPv6 URL", a host NFKC would change
        return [f"{what} is not a URL: {exc}"]
    if parts.scheme not in ("http", "https"):
        return [f"{what} must be an http:// or https:// URL"]
    try:
        port = parts.port
    except ValueError:
        return [f"{what} has a port that is not a number from 1 to 65535"]
    if not parts.hostname or port == 0:
        return [f"{what} names no host (http://host:port/path)"]
    if parts.username is not None or parts.password is not None:
        return [f"{what} must not carry user:password@ (credentials live in the environment)"]
    if _plain(value, parts.netloc):
        return []
    # Here, for the other URLs alone: importing httpx costs a `hive` command 100 ms or more.
    import httpx

    try:
        # What the agents send with: a host it cannot encode (999.1.1.1, an invisible or
        # fullwidth character) would fail every call. Its message names the host alone.
        httpx.URL(value)
    except httpx.InvalidURL as exc:
        return [f"{what} cannot be called: {exc}"]
    return []


def _plain(url: str, netloc: str) -> bool:
    """Whether httpx takes ``url`` (its scheme, host, port and characters already checked)
    without a doubt: all ASCII (httpx percent-encodes the path and query it sends), a host
    it does not encode. Others are for httpx itself to judge."""
    plain = _PLAIN_NETLOC.fullmatch(netloc)
    if not url.isascii() or plain is None:
        return False
    host = plain.group("host")
    if not _IPV4_STYLE.fullmatch(host):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True
