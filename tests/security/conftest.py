"""Fixtures for the security tests (`scopes`, `make_app` and `make_key` are in tests/conftest.py)."""

from __future__ import annotations

#: Every scope of the catalogue a security test's key holds unless it says otherwise.
ALL_SCOPES = ("orders:read", "orders:write", "api_keys:verify", "api_keys:manage")
