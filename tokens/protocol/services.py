"""Writes of the protocol: the revocation list of access tokens (RFC 7009)."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.services.audit import audit_log
from tokens.models import (
    M2MApplication,
    RevokedToken,
)


def access_token_revoke(*, application: M2MApplication, jti: str, expires_at: datetime) -> bool:
    """Put a token's `jti` on the revocation list until it expires; return whether it was new."""
    try:
        with transaction.atomic():
            RevokedToken.objects.create(jti=jti, application=application, expires_at=expires_at)
            audit_log(
                action="tokens.access_token.revoked",
                actor=None,
                organization=application.organization,
                target=application,
                target_label=f"{application} token {jti}",
                extra={"jti": jti, "expires_at": expires_at.isoformat()},
            )
    except IntegrityError:
        return False
    return True


def revoked_tokens_purge(*, now: datetime | None = None) -> int:
    """Delete revocation-list entries whose tokens have expired anyway."""
    deleted, _ = RevokedToken.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
