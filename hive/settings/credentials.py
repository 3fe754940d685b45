"""Credentials a step names by environment variable: the name's rules, and the value read
at call time.
"""

from __future__ import annotations

import os
from typing import TypeGuard

from hive.errors import CredentialError
from hive.settings.fields import CREDENTIAL_NAME, CREDENTIAL_NAME_MAX_CHARS, PREFIX
from hive.settings.loading import get_settings


def credential_name_problem(env_name: object) -> str | None:
    """Why ``env_name`` can never name a credential, or None. The agents' input models
    check it when a pipeline loads, :func:`credential` again at call time. Never quotes a
    malformed name: it may be the secret itself, given where its name belongs."""
    if not _well_formed(env_name):
        return (
            "must be the name of an environment variable (letters, digits and _, at most "
            f"{CREDENTIAL_NAME_MAX_CHARS}), not its value"
        )
    if env_name.upper().startswith(PREFIX):
        # Hive's own settings hold its servers' passwords: never sent to a service.
        return f"{env_name} is one of Hive's own settings, not a credential a step may use"
    return None


def _well_formed(env_name: object) -> TypeGuard[str]:
    return (
        isinstance(env_name, str)
        and len(env_name) <= CREDENTIAL_NAME_MAX_CHARS
        and CREDENTIAL_NAME.fullmatch(env_name) is not None
    )


def credential(env_name: str) -> str:
    """The value of the environment variable ``env_name``, read now: a credential a step
    names (``auth: {env: PARTNER_TOKEN}``, ``api_key_env``). Steps carry the variable's
    name only; the value is read on the worker at call time and must never be stored,
    logged or put in a message.

    Raises:
        CredentialError: (a PermanentError) the name is malformed, a ``HIVE_*`` one,
            outside ``HIVE_CREDENTIAL_ENV_PREFIXES``, or the variable is not set (or
            empty); the message names the variable, never a value.
    """
    problem = credential_name_problem(env_name)
    if problem is not None:
        raise CredentialError(env_name if _well_formed(env_name) else None, problem)
    allowed = get_settings().credentials.prefixes
    if allowed and not env_name.startswith(allowed):
        raise CredentialError(
            env_name,
            f"{env_name} is outside HIVE_CREDENTIAL_ENV_PREFIXES ({', '.join(allowed)})",
        )
    if not os.environ.get(env_name):
        raise CredentialError(
            env_name, f"the environment variable {env_name} is not set on this worker"
        )
    return os.environ[env_name]
