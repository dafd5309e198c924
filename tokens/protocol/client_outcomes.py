"""Usage outcomes of failed client authentications: `invalid_secret`, `expired`, `revoked`, `suspended`.

The hot path reads only what can authenticate: the live secrets (`oauth._live_secrets`) or
live public keys (`assertions._live_keys`) of an active application. When that fails, the
client may be unknown, or known with a wrong secret, or known with a secret or key that
expired or was revoked, or its application may be suspended or revoked. Telling these apart
needs the application's other credentials, so it is done here, only on the failure path and
after the response has been sent (`portal.infra.after_response`): the answer (`invalid_client`)
and its timing are those of an unknown client, and a successful request pays nothing.

One bounded query by `client_id` (unique): the application's status and its newest
`MAX_CREDENTIALS` secrets or keys. The presented secret (or the assertion's signature) is
checked against each; the outcome, as for API keys (`credentials.usage.record_api_key`):

- no credential matches: `invalid_secret` (a known client id with a wrong secret);
- one matches and the application is suspended: `suspended`; revoked, pending or denied: `revoked`;
- one matches and it was revoked: `revoked`; it expired (a rotated secret past its overlap): `expired`.

An unknown client id counts nothing (there is no credential to count it for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import jwt
from django.utils import timezone

from credentials import usage
from portal.infra.after_response import defer
from portal.infra.crypto import verify_digest
from tokens.models import M2MApplication

#: The newest secrets or keys of an application a failed presentation is compared with.
MAX_CREDENTIALS = 20

_SECRET_FIELDS = ("pepper_id", "digest", "revoked_at", "expires_at")
_KEY_FIELDS = ("public_jwk", "algorithm", "revoked_at", "expires_at")


def secret_refused(client_id: str, client_secret: str) -> None:
    """Count, after the response, a secret that authenticated nobody as its client's outcome."""
    if client_id and client_secret:
        defer(lambda: _classify(client_id, "secrets", _SECRET_FIELDS, _secret_matcher(client_secret)))


def assertion_refused(client_id: str, assertion: str) -> None:
    """Count, after the response, an assertion whose signature matched no live key of its client."""
    if client_id and assertion:
        defer(lambda: _classify(client_id, "public_keys", _KEY_FIELDS, _signature_matcher(assertion)))


def _secret_matcher(client_secret: str) -> Callable[[dict], bool]:
    def matches(row: dict) -> bool:
        return bool(row["digest"]) and verify_digest(
            client_secret, pepper_id=row["pepper_id"], digest=row["digest"]
        )

    return matches


def _signature_matcher(assertion: str) -> Callable[[dict], bool]:
    def matches(row: dict) -> bool:
        if not row["public_jwk"] or not row["algorithm"]:
            return False
        try:
            # The signature only: whether this (dead) key signed it, not whether it is acceptable.
            jwt.PyJWS().decode(
                assertion,
                jwt.PyJWK(row["public_jwk"], algorithm=row["algorithm"]).key,
                algorithms=[row["algorithm"]],
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return False
        return True

    return matches


def _classify(client_id: str, relation: str, fields: Iterable[str], matches: Callable[[dict], bool]) -> None:
    rows = list(
        M2MApplication.objects.filter(client_id=client_id)
        .values("organization_id", "status", *(f"{relation}__{name}" for name in fields))
        .order_by(f"-{relation}__created_at", f"-{relation}__id")[:MAX_CREDENTIALS]
    )
    if not rows:
        return  # an unknown client
    presented = [{name: row[f"{relation}__{name}"] for name in fields} for row in rows]
    matched = next((credential for credential in presented if matches(credential)), None)
    outcome = outcome_of(rows[0]["status"], matched, timezone.now())
    usage.record("m2m_app", client_id, rows[0]["organization_id"], outcome)


def outcome_of(status: str, matched: dict | None, now: datetime) -> str:
    """Return the usage outcome of a refused presentation: the application's status, then the credential's."""
    if matched is None:
        return "invalid_secret"
    if status == M2MApplication.Status.SUSPENDED:
        return "suspended"
    if status != M2MApplication.Status.ACTIVE:
        return "revoked"  # revoked, or never usable (pending, denied): like an API key
    if matched["revoked_at"] is not None:
        return "revoked"
    if matched["expires_at"] is not None and matched["expires_at"] <= now:
        return "expired"
    # A live credential of an active application that still failed: the application
    # authenticates another way (a secret sent to a private_key_jwt application, say).
    return "invalid_secret"
