"""Reads for the tokens room; every customer-facing query starts from an organisation."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from portal.metrics import verification_metrics
from portal.models import Organization
from tokens.keys import local_public_key
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication, RevokedToken
from tokens.verifier import InvalidToken, TokenVerifier, VerifiedToken


def m2m_apps_for(organization: Organization) -> QuerySet[M2MApplication]:
    """Return the organisation's applications with owner and live-secret count, active first."""
    now = timezone.now()
    live = Q(secrets__revoked_at__isnull=True) & (
        Q(secrets__expires_at__isnull=True) | Q(secrets__expires_at__gt=now)
    )
    return (
        M2MApplication.objects.filter(organization=organization)
        .select_related("owner")
        .annotate(live_secret_count=Count("secrets", filter=live))
        .order_by("status", "name", "id")
    )


def m2m_app_for(organization: Organization, pk: int) -> M2MApplication:
    """Return one application of the organisation with its scopes (raises DoesNotExist)."""
    return (
        M2MApplication.objects.filter(organization=organization)
        .select_related("owner", "created_by", "organization")
        .prefetch_related(Prefetch("allowed_scopes"))
        .get(pk=pk)
    )


def client_secrets_for(application: M2MApplication) -> QuerySet[ClientSecret]:
    """Return the application's secrets, newest first."""
    return ClientSecret.objects.filter(application=application).order_by("-created_at", "-id")


def client_public_keys_for(application: M2MApplication) -> QuerySet[ClientPublicKey]:
    """Return the application's registered public keys, newest first."""
    return ClientPublicKey.objects.filter(application=application).order_by("-created_at", "-id")


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

    One query, so revocations take effect at once on every app server.
    """
    now = timezone.now()
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
        .values("revoked_at", "application__status", "jti_revoked")
        .first()
    )
    if state is None:
        return True
    if state["jti_revoked"] or state["application__status"] != M2MApplication.Status.ACTIVE:
        return True
    return state["revoked_at"] is not None and state["revoked_at"] <= now


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
    if token_is_revoked(verified.claims):
        raise InvalidToken("revoked")
    return verified


def m2m_apps_inventory(organization: Organization | None) -> QuerySet[M2MApplication]:
    """Return applications annotated with the inventory's common columns (all organisations for None).

    An application expires when its last live secret does (never, if one has no expiry);
    it was last used when any of its secrets was.
    """
    now = timezone.now()
    apps = (
        M2MApplication.objects.all()
        if organization is None
        else M2MApplication.objects.filter(organization=organization)
    )
    live = ClientSecret.objects.filter(application=OuterRef("pk"), revoked_at__isnull=True).exclude(
        expires_at__lte=now
    )
    return apps.annotate(
        row_kind=Value("m2m_app", output_field=CharField()),
        row_ref=F("client_id"),
        row_superseded=Value(False),
        row_owner_email=F("owner__email"),
        row_created=F("created"),
        row_expires=Case(
            When(Exists(live.filter(expires_at__isnull=True)), then=Value(None)),
            default=Subquery(live.order_by("-expires_at").values("expires_at")[:1]),
            output_field=DateTimeField(),
        ),
        row_last_used=Subquery(
            ClientSecret.objects.filter(application=OuterRef("pk"), last_used_at__isnull=False)
            .order_by("-last_used_at")
            .values("last_used_at")[:1]
        ),
    )
