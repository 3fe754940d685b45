"""Fixtures of every unit test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hive.settings import get_settings


@pytest.fixture(autouse=True)
def _no_cached_settings() -> Iterator[None]:
    """Each test reads the settings of its own environment, and leaves none cached: settings
    read under a patched environment (a test's `HIVE_DATABASE_URL`) must not outlive it, or a
    later test in the same process meets "differs from this process's own setting"."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
