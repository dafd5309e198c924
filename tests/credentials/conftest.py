"""Fixtures for API key tests: clients that present a key (`scopes`, `make_key`: tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def api_key_client():
    """Return a client factory that presents `key` as a bearer credential."""

    def make(key: str, *, header: str = "bearer") -> Client:
        if header == "x-api-key":
            return Client(HTTP_X_API_KEY=key)
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    return make
