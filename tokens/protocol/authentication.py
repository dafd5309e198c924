"""DRF authentication for RFC 9068 access tokens, built on tokens.verifier."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from credentials.api_keys.verification import api_key_state
from portal import authz
from portal.principal import INVALID_CREDENTIAL, MAX_CREDENTIAL_LENGTH, Principal
from portal.selectors import owner_role_subquery
from tokens.models import FederatedIdentity, M2MApplication
from tokens.protocol.exchange import key_id_of
from tokens.protocol.selectors import live_access_token
from tokens.verifier import InvalidToken


def _looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("eyJ")


class AccessTokenAuthentication(BaseAuthentication):
    """Authenticate `Authorization: Bearer <JWT>` issued by this portal for PORTAL_DEFAULT_AUDIENCE.

    Inside the portal the keys come from the database (no HTTP) and revocations are honoured
    at once. A bearer value that is not JWT-shaped is left to the other classes (API keys).
    """

    www_authenticate_realm = "api"

    def authenticate(self, request):
        raw_header = get_authorization_header(request)
        if len(raw_header) > MAX_CREDENTIAL_LENGTH:
            if raw_header[:7].lower() == b"bearer ":
                raise AuthenticationFailed(INVALID_CREDENTIAL)
            return None
        header = raw_header.split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not _looks_like_jwt(token):
            return None
        try:
            verified = live_access_token(token, audience=settings.PORTAL_DEFAULT_AUDIENCE)
        except InvalidToken:
            raise AuthenticationFailed(INVALID_CREDENTIAL) from None
        claims = verified.claims
        principal = self.principal_of(claims)
        if principal is None:
            raise AuthenticationFailed(INVALID_CREDENTIAL)
        return principal, principal

    @staticmethod
    def principal_of(claims: dict) -> Principal | None:
        """Return whom a live token's claims act for now (introspection asks too), or None."""
        key_id = key_id_of(claims)
        if key_id is not None:
            return _exchanged_principal(claims, key_id)

        minted = verified_scopes(claims)
        trust_id = _trust_id(claims)
        application = M2MApplication.objects.select_related("organization", "owner").annotate(
            owner_role=owner_role_subquery(), still_held=_held_count(minted)
        )
        if trust_id is not None:
            application = application.annotate(trust_owner_role=_trust_owner_role(trust_id))
        application = application.filter(
            client_id=claims["client_id"], organization__slug=claims.get("org_id") or ""
        ).first()
        if application is None:
            return None
        # Bounded by the application's scopes as they are now: narrowing it narrows the tokens
        # it minted before, here and at introspection, as for a key's exchanged tokens. The
        # count in the same query says whether it still holds them all; only then is a second
        # query spared.
        held = minted
        if application.still_held != len(minted):
            held = minted & frozenset(application.allowed_scopes.values_list("name", flat=True))
        # The token acts for the application's owner as they are now, not as they were when it
        # was minted: a demoted owner's tokens lose the managers' scopes at once.
        scopes = authz.effective_scopes(held, application.owner_role)
        if trust_id is not None:
            # Minted through a trust, a credential with an owner of its own: it acts for that
            # owner too, as they are now (a trust whose owner was demoted or left keeps no
            # manager's or no portal scope, whoever owns the application).
            scopes &= authz.effective_scopes(held, application.trust_owner_role)
        return Principal(
            credential_type="access_token",
            credential_id=claims["jti"],
            organization_id=application.organization_id,
            organization_slug=application.organization.slug,
            scopes=scopes,
            owner_email=application.owner.email,
            owner_id=application.owner_id,
            owner_role=application.owner_role,
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
            minted_by=_minted_by(claims),
            extra={
                "client_id": claims["client_id"],
                "application": application.name,
                # Staff trust it across organisations (introspection, central key verification).
                "resource_server": application.is_resource_server,
            },
        )

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


def _held_count(scopes: frozenset[str]) -> Coalesce:
    """Count how many of `scopes` the application (the outer query's row) holds now."""
    held = M2MApplication.allowed_scopes.through.objects.filter(
        m2mapplication_id=OuterRef("pk"), scope__name__in=sorted(scopes)
    )
    counted = held.order_by().values("m2mapplication_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _trust_id(claims: dict) -> str | None:
    """Return the trust (federated identity) a token was minted through (its `fed` claim), if any."""
    federation = claims.get("fed")
    trust = federation.get("id") if isinstance(federation, dict) else None
    return trust if isinstance(trust, str) and trust else None


def _trust_owner_role(trust_id: str) -> Subquery:
    """The current role of the owner of the application's (the outer query's row) trust `trust_id`
    (None once they left, or when no such trust exists)."""
    trusts = FederatedIdentity.objects.filter(public_id=trust_id, application_id=OuterRef("pk"))
    return Subquery(trusts.annotate(role=owner_role_subquery()).values("role")[:1])


def _minted_by(claims: dict) -> dict[str, str]:
    """Name the client secret (`csid`) or public key (`ckid`) that minted a token, if one did."""
    for claim in ("ckid", "csid"):
        if isinstance(claims.get(claim), str) and claims[claim]:
            return {claim: claims[claim]}
    return {}


def _exchanged_principal(claims: dict, key_id: str) -> Principal | None:
    """Return the principal of a token exchanged for an API key: the key's organisation and owner."""
    state = api_key_state(key_id)  # live_access_token checked it already; this is usually the cache
    if not state.valid or state.key["organization_slug"] != claims.get("org_id"):
        return None
    key = state.key
    return Principal(
        credential_type="access_token",
        credential_id=claims["jti"],
        organization_id=key["organization_id"],
        organization_slug=key["organization_slug"],
        # Bounded by the key as it is now, too: narrowing the key narrows its exchanged tokens.
        scopes=authz.effective_scopes(verified_scopes(claims) & set(key["scopes"]), key["owner_role"]),
        owner_email=key["owner_email"],
        owner_id=key["owner_id"],
        owner_role=key["owner_role"],
        expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
        minted_by=_minted_by(claims),
        extra={
            "client_id": claims["client_id"],
            "api_key_id": key_id,
            "api_key": key["name"],
            "actor": claims["act"].get("sub"),
            # The key's environment; tokens minted before the claim existed take it from the key.
            "environment": claims.get("environment") or key["environment"],
        },
    )


def verified_scopes(claims: dict) -> frozenset[str]:
    """Return the token's scopes as a set."""
    return frozenset(claims.get("scope", "").split())
