"""The portal scopes of the API-key REST API (who may use them: portal.authz)."""

from __future__ import annotations

from portal.permissions import HasScopes

MANAGE_SCOPE = "api_keys:manage"
VERIFY_SCOPE = "api_keys:verify"

__all__ = ["HasScopes", "MANAGE_SCOPE", "VERIFY_SCOPE"]
