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
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from credentials.api_keys.verification import api_key_state
from portal.metrics import verification_metrics
from portal.models import Organization
from tokens.exchange import SUBJECT_PREFIX, key_id_of
from tokens.keys import local_public_key
from tokens.models import ClientPublicKey, ClientSecret, FederatedIdentity, M2MApplication, RevokedToken
from tokens.verifier import InvalidToken, TokenVerifier, VerifiedToken


def m2m_apps_for(organization: Organization) -> QuerySet[M2MApplication]:
    """Return the organisation's applications with owner and live secret and key counts, active first."""
    now = timezone.now()
    live = Q(secrets__revoked_at__isnull=True) & (
        Q(secrets__expires_at__isnull=True) | Q(secrets__expires_at__gt=now)
    )
    live_keys = Q(public_keys__revoked_at__isnull=True) & (
        Q(public_keys__expires_at__isnull=True) | Q(public_keys__expires_at__gt=now)
    )
    return (
        M2MApplication.objects.filter(organization=organization)
        .select_related("owner")
        # distinct: the two joins would otherwise multiply each other's rows.
        .annotate(
            live_secret_count=Count("secrets", filter=live, distinct=True),
            live_key_count=Count("public_keys", filter=live_keys, distinct=True),
        )
        .order_by("status", "name", "id")
    )


def m2m_apps_filtered(
    organization: Organization,
    *,
    search: str = "",
    status: str = "",
    owner_id: int | None = None,
    auth_method: str = "",
) -> QuerySet[M2MApplication]:
    """Return the organisation's applications matching a search (name, client id, owner email) and filters.

    Newest first, with owner, creator, scopes, secrets and public keys loaded in a constant
    number of queries however many applications a page holds (the REST API shows them all).
    """
    apps = M2MApplication.objects.filter(organization=organization)
    if search:
        apps = apps.filter(
            Q(name__icontains=search) | Q(client_id__icontains=search) | Q(owner__email__icontains=search)
        )
    if status in M2MApplication.Status.values:
        apps = apps.filter(status=status)
    if owner_id:
        apps = apps.filter(owner_id=owner_id)
    if auth_method in M2MApplication.AuthMethod.values:
        apps = apps.filter(token_endpoint_auth_method=auth_method)
    return (
        apps.select_related("owner", "created_by")
        .prefetch_related(
            "allowed_scopes",
            Prefetch("secrets", queryset=ClientSecret.objects.order_by("-created_at", "-id")),
            Prefetch("public_keys", queryset=ClientPublicKey.objects.order_by("-created_at", "-id")),
        )
        .order_by("-created", "-id")
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
    if "act" in claims or str(claims.get("sub", "")).startswith(SUBJECT_PREFIX):
        key_id = key_id_of(claims)
        if key_id is None or not state["application__may_exchange_api_keys"]:
            return True
        key = api_key_state(key_id)
        return not key.valid or key.key["organization_slug"] != claims.get("org_id")
    return False


def _federated_token_is_revoked(claims: dict, federation) -> bool:
    """Return whether a token minted by a federated identity is dead: the trust or the application
    is no longer active (suspended, revoked), or its `jti` was revoked. One query."""
    if not isinstance(federation, dict) or not isinstance(federation.get("id"), str):
        return True
    state = (
        FederatedIdentity.objects.filter(
            public_id=federation["id"], application__client_id=claims["client_id"]
        )
        .annotate(jti_revoked=Exists(RevokedToken.objects.filter(jti=claims["jti"])))
        .values("status", "application__status", "jti_revoked")
        .first()
    )
    return (
        state is None
        or state["jti_revoked"]
        or state["status"] != FederatedIdentity.Status.ACTIVE
        or state["application__status"] != M2MApplication.Status.ACTIVE
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
    if token_is_revoked(verified.claims):
        raise InvalidToken("revoked")
    return verified


def m2m_apps_inventory(organization: Organization | None) -> QuerySet[M2MApplication]:
    """Return applications annotated with the inventory's common columns (all organisations for None).

    An application expires when its last live secret (or public key) does (never, if one has
    no expiry); it was last used when any of its secrets (or keys) was.
    """
    now = timezone.now()
    apps = (
        M2MApplication.objects.all()
        if organization is None
        else M2MApplication.objects.filter(organization=organization)
    )
    secret_expires, secret_last_used = _credential_columns(ClientSecret, now)
    key_expires, key_last_used = _credential_columns(ClientPublicKey, now)
    uses_keys = Q(token_endpoint_auth_method=M2MApplication.AuthMethod.PRIVATE_KEY_JWT)
    return apps.annotate(
        row_kind=Value("m2m_app", output_field=CharField()),
        row_ref=F("client_id"),
        row_superseded=Value(False),
        # The API key it was moved from, if any (its name and id are read for those rows only).
        row_moved=F("moved_from_key_id"),
        row_owner_email=F("owner__email"),
        row_created=F("created"),
        # A private_key_jwt application has keys and never secrets: read the right table.
        row_expires=Case(
            When(uses_keys, then=key_expires), default=secret_expires, output_field=DateTimeField()
        ),
        row_last_used=Case(
            When(uses_keys, then=key_last_used), default=secret_last_used, output_field=DateTimeField()
        ),
    )


def _credential_columns(model, now):
    """Return (expiry, last use) expressions of an application over its secrets or keys."""
    live = model.objects.filter(application=OuterRef("pk"), revoked_at__isnull=True).exclude(
        expires_at__lte=now
    )
    expires = Case(
        When(Exists(live.filter(expires_at__isnull=True)), then=Value(None)),
        default=Subquery(live.order_by("-expires_at").values("expires_at")[:1]),
        output_field=DateTimeField(),
    )
    last_used = Subquery(
        model.objects.filter(application=OuterRef("pk"), last_used_at__isnull=False)
        .order_by("-last_used_at")
        .values("last_used_at")[:1]
    )
    return expires, last_used


def federated_identities_inventory(organization: Organization | None) -> QuerySet[FederatedIdentity]:
    """Return federated identities annotated with the inventory's common columns (all organisations for None).

    A trust holds no secret and never expires by itself; it was last used when its last token was accepted.
    """
    identities = (
        FederatedIdentity.objects.all()
        if organization is None
        else FederatedIdentity.objects.filter(organization=organization)
    )
    return identities.annotate(
        row_kind=Value("federated_id", output_field=CharField()),
        row_ref=F("public_id"),
        row_superseded=Value(False),
        row_owner_email=F("owner__email"),
        row_created=F("created_at"),
        row_expires=Value(None, output_field=DateTimeField()),
        row_last_used=F("last_used_at"),
        # A trust is never moved from or to another kind.
        row_moved=Value(None, output_field=IntegerField()),
    )


def federated_identities_for(application: M2MApplication) -> QuerySet[FederatedIdentity]:
    """Return the application's trusts, newest first."""
    return (
        FederatedIdentity.objects.filter(application=application)
        .select_related("owner")
        .order_by("-created_at", "-id")
    )


def federated_identity_for(organization: Organization, pk: int) -> FederatedIdentity:
    """Return one trust of the organisation (raises DoesNotExist)."""
    return FederatedIdentity.objects.select_related("application", "owner", "organization").get(
        organization=organization, pk=pk
    )
