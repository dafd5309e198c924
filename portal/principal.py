"""The machine principal that API-key and access-token authentication both produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: One body for every unusable machine credential (missing, malformed, unknown, expired,
#: revoked; API key or access token), so a caller learns nothing about why it failed.
INVALID_CREDENTIAL = "The credential is missing, malformed, unknown, expired or revoked."

#: Longest credential (API key, JWT, Basic value) any authenticator looks at. Real ones are far
#: shorter (a key is 65 characters, a JWT about a kilobyte); anything longer is refused before
#: any decoding or lookup, so a huge header costs nothing.
MAX_CREDENTIAL_LENGTH = 8192


@dataclass(frozen=True)
class Principal:
    """Who is calling, when a machine calls: set as both `request.user` and `request.auth` by DRF.

    It deliberately is not a `User`: session-only code paths cannot mistake a machine for a
    person, and views tell the two apart with `isinstance(request.auth, Principal)`.
    """

    credential_type: Literal["api_key", "access_token"]
    credential_id: str
    organization_id: int
    organization_slug: str
    scopes: frozenset[str]
    owner_email: str | None = None
    owner_id: int | None = None
    #: The owner's current role in the organisation (None once they have left): it bounds what
    #: the credential may do (portal.authz). `scopes` are already bounded by it.
    owner_role: str | None = None
    expires_at: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: For an access token, the client secret or public key that minted it (`{"csid": …}` or
    #: `{"ckid": …}`, its claims): four eyes counts whoever created it, live or not.
    minted_by: dict[str, str] = field(default_factory=dict)

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def has_scopes(self, *required: str) -> bool:
        """Return whether every required scope is held."""
        return set(required) <= self.scopes
