"""Mint RFC 9068 JWT access tokens (DOT's ACCESS_TOKEN_GENERATOR)."""

from __future__ import annotations

import secrets
import time

import jwt
from django.conf import settings

from tokens.signing.services import active_signing_key

#: The JOSE `typ` of access tokens (RFC 9068 §2.1).
ACCESS_TOKEN_TYP = "at+jwt"


def access_token_claims(
    *,
    application,
    scopes,
    audience: str,
    lifetime: int,
    secret_id: str | None,
    key_id: str | None = None,
    federation: dict | None = None,
    subject: str | None = None,
    organization_slug: str | None = None,
) -> dict:
    """Return the claims of a new access token: who, for whom, what, until when. Nothing secret.

    `subject` and `organization_slug` default to the application's; a token exchanged for an
    API key names the key and its organisation instead (and gets an `act` claim).
    """
    now = int(time.time())
    claims = {
        "iss": settings.PORTAL_ISSUER,
        "sub": subject or application.client_id,
        "client_id": application.client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(lifetime),
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(scopes),
        "org_id": organization_slug or application.organization.slug,
    }
    # The non-secret id of the client secret (`csid`) or public key (`ckid`, its RFC 7638
    # thumbprint) that minted the token, so revoking that credential also rejects its tokens.
    # A federated identity's token records the trust and the external issuer and subject
    # (`fed`); suspending or revoking the trust rejects it.
    if federation:
        claims["fed"] = federation
    elif key_id:
        claims["ckid"] = key_id
    else:
        claims["csid"] = secret_id
    return claims


def sign_access_token(claims: dict) -> str:
    """Sign claims with the active key, typed `at+jwt`."""
    key = active_signing_key()
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"typ": ACCESS_TOKEN_TYP, "kid": key.kid}
    )


def _federation_claim(identity) -> dict | None:
    """Return the `fed` claim of a federated identity's token: the trust, the external iss and sub."""
    if identity is None:
        return None
    return {"id": identity.public_id, "iss": identity.presented_issuer, "sub": identity.presented_subject}


def generate_access_token(request) -> str:
    """Return the JWT for an oauthlib request the validator has authenticated and checked."""
    exchange = getattr(request, "portal_exchange", None)  # set by tokens.protocol.exchange (RFC 8693)
    claims = access_token_claims(
        application=request.client,
        scopes=request.scopes or [],
        audience=request.portal_audience,
        lifetime=request.expires_in,
        secret_id=request.portal_client_secret.public_id if request.portal_client_secret else None,
        key_id=request.portal_client_key.kid if getattr(request, "portal_client_key", None) else None,
        federation=_federation_claim(getattr(request, "portal_federated_identity", None)),
        subject=exchange.subject if exchange else None,
        organization_slug=exchange.organization_slug if exchange else None,
    )
    if exchange is None and request.client.environment:
        # An application moved from a key keeps the key's environment (docs/choosing.md).
        claims["environment"] = request.client.environment
    if exchange is not None:
        # RFC 8693 §4.1: the gateway acted, on behalf of the key.
        claims["act"] = {"sub": request.client.client_id}
        # A test key's token must be told apart from a live key's (docs/validating-tokens.md).
        claims["environment"] = exchange.environment
    return sign_access_token(claims)
