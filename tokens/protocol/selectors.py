"""Reads of the protocol: is a presented access token live (signature, claims, revocation)?"""

from __future__ import annotations

import time
from functools import lru_cache

from django.conf import settings
from django.db.models import (
    Exists,
)
from django.utils import timezone

from credentials.api_keys.verification import api_key_state
from portal.infra.metrics import verification_metrics
from tokens.models import ClientPublicKey, ClientSecret, FederatedIdentity, M2MApplication, RevokedToken
from tokens.protocol.exchange import SUBJECT_PREFIX, key_id_of
from tokens.signing.keys import local_public_key
from tokens.verifier import InvalidToken, TokenVerifier, VerifiedToken


@lru_cache(maxsize=4)
def _local_verifier(issuer: str, audience: str | None) -> TokenVerifier:
    return TokenVerifier(
        issuer=issuer,
        audience=audience,
        key_resolver=local_public_key,
        verify_audience=audience is not None,
    )


def token_is_revoked(claims: dict) -> bool:
    """Return whether a verified token was revoked: by `jti`, with its application, or with its secret or key.

    One query, so revocations take effect at once on every app server. A token exchanged for
    an API key (RFC 8693) also dies with the key (its cached state, dropped by every change of
    the key, else one more query) and when staff stop its gateway exchanging.
    """
    now = timezone.now()
    federation = claims.get("fed")
    if federation is not None:
        return _federated_token_is_revoked(claims, federation)
    if claims.get("ckid"):
        minted_by = ClientPublicKey.objects.filter(
            kid=claims["ckid"], application__client_id=claims["client_id"]
        )
    else:
        minted_by = ClientSecret.objects.filter(
            public_id=claims.get("csid") or "", application__client_id=claims["client_id"]
        )
    state = (
        minted_by.annotate(jti_revoked=Exists(RevokedToken.objects.filter(jti=claims["jti"])))
        .values("revoked_at", "application__status", "application__may_exchange_api_keys", "jti_revoked")
        .first()
    )
    if state is None:
        return True
    if state["jti_revoked"] or state["application__status"] != M2MApplication.Status.ACTIVE:
        return True
    if state["revoked_at"] is not None and state["revoked_at"] <= now:
        return True
    return _exchange_is_dead(claims, may_exchange=state["application__may_exchange_api_keys"])


def _exchange_is_dead(claims: dict, *, may_exchange: bool) -> bool:
    """Return whether a token exchanged for an API key (RFC 8693) died with it: the key is no
    longer valid or moved organisation, or staff stopped its gateway exchanging. False for any
    other token."""
    if "act" not in claims and not str(claims.get("sub", "")).startswith(SUBJECT_PREFIX):
        return False
    key_id = key_id_of(claims)
    if key_id is None or not may_exchange:
        return True
    key = api_key_state(key_id)
    return not key.valid or key.key["organization_slug"] != claims.get("org_id")


def _federated_token_is_revoked(claims: dict, federation) -> bool:
    """Return whether a token minted by a federated identity is dead: the trust or the application
    is no longer active (suspended, revoked), its `jti` was revoked, or (exchanged for an API
    key by a gateway that signs in with a trust) the key died. One query, and the key's state."""
    if not isinstance(federation, dict) or not isinstance(federation.get("id"), str):
        return True
    state = (
        FederatedIdentity.objects.filter(
            public_id=federation["id"], application__client_id=claims["client_id"]
        )
        .annotate(jti_revoked=Exists(RevokedToken.objects.filter(jti=claims["jti"])))
        .values("status", "application__status", "application__may_exchange_api_keys", "jti_revoked")
        .first()
    )
    return (
        state is None
        or state["jti_revoked"]
        or state["status"] != FederatedIdentity.Status.ACTIVE
        or state["application__status"] != M2MApplication.Status.ACTIVE
        or _exchange_is_dead(claims, may_exchange=state["application__may_exchange_api_keys"])
    )


def _token_failure(exc: Exception) -> str | None:
    if not isinstance(exc, InvalidToken):
        return None
    return _TOKEN_FAILURES.get(exc.reason, "invalid")


_TOKEN_FAILURES = {
    "revoked": "revoked",
    "expired": "expired",
    "unknown kid": "unknown_kid",
    "bad signature": "bad_signature",
    "wrong audience": "wrong_audience",
    "wrong issuer": "wrong_issuer",
}


@verification_metrics("access_token", outcome_of=lambda verified: "valid", failure_of=_token_failure)
def live_access_token(token: str, *, audience: str | None) -> VerifiedToken:
    """Verify a token with the portal's own keys and revocation list, or raise InvalidToken.

    `audience=None` skips the audience check (introspection answers for any audience).
    """
    verified = _local_verifier(settings.PORTAL_ISSUER, audience).verify(token)
    # The verifier's leeway is for other parties' clocks; the portal issued this token, so past
    # `exp` it is expired here at once (RFC 7662: inactive). A revocation-list entry is purged
    # at `exp`, so a leeway here would also bring a revoked token back for its remainder.
    if int(verified.claims["exp"]) <= time.time():
        raise InvalidToken("expired")
    if token_is_revoked(verified.claims):
        raise InvalidToken("revoked")
    return verified
