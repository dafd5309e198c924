"""Fixtures for credentials tests: clients presenting a key, fresh usage counters (and tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials import usage
from credentials.insight import recorder


@pytest.fixture
def api_key_client():
    """Return a client factory that presents `key` as a bearer credential."""

    def make(key: str, *, header: str = "bearer") -> Client:
        if header == "x-api-key":
            return Client(HTTP_X_API_KEY=key)
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    return make


@pytest.fixture
def fresh_usage_counters():
    """Forget this process's usage counts, unlisted series and insight notes before and after the test."""
    usage._counts.clear()
    usage._unlisted.clear()
    recorder.take()
    yield
    usage._counts.clear()
    usage._unlisted.clear()
    recorder.take()
