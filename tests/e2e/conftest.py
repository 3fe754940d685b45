"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def env(hive_env: dict[str, str], clean_state: None) -> dict[str, str]:
    """Environment for `hive` and producer subprocesses of this session, on clean state."""
    return {**os.environ, **hive_env}
