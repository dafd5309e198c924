"""Writes for M2M applications, their secrets, keys and federated identities, signing keys, revocation."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken as InvalidFernetToken
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from credentials import policy
from credentials.api_keys.models import ApiKey, ApiKeyStatus
from credentials.governance import approvals, edits, org_policy, ownership
from credentials.governance.models import CredentialRequest, RequestType
from credentials.governance.registry import MovedLink
from credentials.models import Scope
from portal.infra.crypto import is_base62, keyed_digest, peppers, random_base62
from portal.models import Organization, User
from portal.services.audit import audit_log
from tokens import keys
from tokens.assertions import parse_public_key
from tokens.catalogue import check_audiences
from tokens.models import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_FEDERATED_TOKEN_AGE,
    MAX_TOKEN_LIFETIME,
    MIN_FEDERATED_TOKEN_AGE,
    MIN_TOKEN_LIFETIME,
    ClientCredential,
    ClientPublicKey,
    ClientSecret,
    FederatedIdentity,
    M2MApplication,
    RevokedToken,
    SigningKey,
)

CLIENT_SECRET_PREFIX = "ips_"
CLIENT_SECRET_BODY_LENGTH = 32  # 32 base62 characters = 190 bits
MAX_LIVE_SECRETS = 5
#: Two keys at once are enough to rotate with overlap.
MAX_LIVE_PUBLIC_KEYS = 2
MAX_OVERLAP = timedelta(days=7)
DEFAULT_OVERLAP = timedelta(hours=24)
# A retired signing key stays published this long: the longest token lifetime plus clock leeway.
RETIRED_KEY_PUBLISH_FOR = timedelta(seconds=MAX_TOKEN_LIFETIME + 300)


def _new_secret(application: M2MApplication, actor: User | None) -> tuple[ClientSecret, str]:
    plaintext = CLIENT_SECRET_PREFIX + random_base62(CLIENT_SECRET_BODY_LENGTH)
    pepper_id, digest = keyed_digest(plaintext)
    secret = ClientSecret.objects.create(
        # The organisation's maximum client-secret lifetime, if it sets one.
        expires_at=org_policy.check_lifetime(application.organization, "m2m_app", None),
        application=application,
        public_id=random_base62(12),
        hint=plaintext[: len(CLIENT_SECRET_PREFIX) + 4],
        digest=digest,
        pepper_id=pepper_id,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    return secret, plaintext


@transaction.atomic
def m2m_app_create(
    *,
    organization: Organization,
    name: str,
    owner: User,
    actor: User | None,
    scopes: Iterable[Scope | str] = (),
    audiences: Iterable[str] = (),
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    description: str = "",
    auth_method: str = M2MApplication.AuthMethod.CLIENT_SECRET,
    public_key: str = "",
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    via: str = "",
    moved_from_key: ApiKey | None = None,
) -> tuple[M2MApplication, str | None]:
    """Create an application with its first client secret; return the row and the one-time secret.

    A `private_key_jwt` application gets no secret (None is returned instead): it gets the
    `public_key` given (a public JWK or PEM), or none yet, and its owner registers one later.
    `via` names the interface or credential that made the change (`api`, `api_key:…`), for the audit.
    """
    application, scope_rows = _new_application(
        organization=organization,
        name=name,
        owner=owner,
        actor=actor,
        scopes=scopes,
        audiences=audiences,
        token_lifetime=token_lifetime,
        description=description,
        status=M2MApplication.Status.ACTIVE,
        auth_method=auth_method,
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
        moved_from_key=moved_from_key,
    )
    policy_extra = {
        **({"allowed_ips": application.allowed_ips} if application.allowed_ips else {}),
        **({"rate_limit": application.rate_limit} if application.rate_limit else {}),
    }
    moved = {"moved_from": moved_from_key.key_id} if moved_from_key is not None else {}
    if application.uses_private_key_jwt:
        key = _new_public_key(application, public_key, actor) if public_key.strip() else None
        audit_log(
            action="tokens.m2m_app.created",
            actor=actor,
            organization=organization,
            target=application,
            extra={
                "client_id": application.client_id,
                "owner": owner.email,
                "scopes": sorted(s.name for s in scope_rows),
                "audiences": application.allowed_audiences,
                "token_lifetime": token_lifetime,
                "auth_method": application.token_endpoint_auth_method,
                **({"public_key_kid": key.kid, "public_key_alg": key.algorithm} if key else {}),
                **policy_extra,
                **_via(via),
                **moved,
            },
        )
        return application, None
    if public_key.strip():
        raise ValidationError({"public_key": "Only a private_key_jwt application takes a public key."})
    secret, plaintext = _new_secret(application, actor)
    audit_log(
        action="tokens.m2m_app.created",
        actor=actor,
        organization=organization,
        target=application,
        extra={
            "client_id": application.client_id,
            "owner": owner.email,
            "scopes": sorted(s.name for s in scope_rows),
            "audiences": application.allowed_audiences,
            "token_lifetime": token_lifetime,
            "secret_hint": secret.hint,
            **policy_extra,
            **_via(via),
            **moved,
        },
    )
    return application, plaintext


def _scope_rows(scopes: Iterable[Scope | str]) -> list[Scope]:
    scope_rows = []
    names = [s for s in scopes if isinstance(s, str)]
    if names:
        found = {s.name: s for s in Scope.objects.filter(name__in=names)}
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise ValidationError({"scopes": "Unknown scope(s): " + " ".join(unknown)})
        scope_rows.extend(found.values())
    scope_rows.extend(s for s in scopes if isinstance(s, Scope))
    return scope_rows


def _via(via: str) -> dict[str, str]:
    """Return the audit extra naming the interface or credential a change came through, if any."""
    return {"via": via} if via else {}


def _new_application(
    *,
    organization: Organization,
    name: str,
    owner: User,
    actor: User | None,
    scopes: Iterable[Scope | str],
    audiences: Iterable[str],
    token_lifetime: int,
    description: str,
    status: str,
    auth_method: str = M2MApplication.AuthMethod.CLIENT_SECRET,
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    moved_from_key: ApiKey | None = None,
) -> tuple[M2MApplication, list[Scope]]:
    name = name.strip()
    allowed_ips = policy.clean_allowed_ips(list(allowed_ips))
    rate_limit = policy.clean_rate_limit(rate_limit)
    if not name:
        raise ValidationError({"name": "Give the application a name."})
    ownership.check_owner_is_member(organization, owner)
    if not MIN_TOKEN_LIFETIME <= token_lifetime <= MAX_TOKEN_LIFETIME:
        raise ValidationError(
            {"token_lifetime": f"Use between {MIN_TOKEN_LIFETIME} and {MAX_TOKEN_LIFETIME} seconds."}
        )
    if auth_method not in M2MApplication.AuthMethod.values:
        raise ValidationError({"auth_method": "Choose client_secret_basic or private_key_jwt."})
    scope_rows = _scope_rows(scopes)
    ownership.check_owner_may_hold(organization, owner, [s.name for s in scope_rows])
    application = M2MApplication.objects.create(
        organization=organization,
        name=name,
        owner=owner,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        description=description,
        allowed_audiences=check_audiences(organization=organization, audiences=audiences),
        token_lifetime=token_lifetime,
        status=status,
        token_endpoint_auth_method=auth_method,
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
        moved_from_key=moved_from_key,
        environment=moved_from_key.environment if moved_from_key is not None else "",
        review_due_at=org_policy.review_due_from(organization, "m2m_app")
        if status == M2MApplication.Status.ACTIVE
        else None,
    )
    application.allowed_scopes.set(scope_rows)
    return application, scope_rows


@transaction.atomic
def m2m_app_request(
    *,
    organization: Organization,
    name: str,
    owner: User,
    requester: User,
    justification: str,
    scopes: Iterable[Scope | str] = (),
    audiences: Iterable[str] = (),
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    description: str = "",
    auth_method: str = M2MApplication.AuthMethod.CLIENT_SECRET,
    moved_from_key: ApiKey | None = None,
) -> tuple[M2MApplication, CredentialRequest]:
    """Store a pending application (a client id, no secret) and ask the organisation's approvers for it.

    A pending `private_key_jwt` application holds no key either: after approval its owner
    registers the first one (`client_public_key_add`), which activates it.
    """
    application, scope_rows = _new_application(
        organization=organization,
        name=name,
        owner=owner,
        actor=requester,
        scopes=scopes,
        audiences=audiences,
        token_lifetime=token_lifetime,
        description=description,
        status=M2MApplication.Status.PENDING,
        auth_method=auth_method,
        moved_from_key=moved_from_key,
    )
    request = approvals.credential_request_create(
        credential=application,
        requester=requester,
        request_type=RequestType.CREATE,
        justification=justification,
        requested_scopes=[s.name for s in scope_rows],
    )
    return application, request


@transaction.atomic
def client_secret_rotate(
    *, application: M2MApplication, actor: User | None, overlap: timedelta = DEFAULT_OVERLAP, via: str = ""
) -> tuple[ClientSecret, str]:
    """Add a new secret and schedule the current ones to stop after `overlap` (0 to 7 days)."""
    _check_overlap(overlap)
    # Lock the application so concurrent rotations serialise and see each other's secrets.
    application = M2MApplication.objects.select_for_update().get(pk=application.pk)
    if application.uses_private_key_jwt:
        raise ValidationError(
            "This application authenticates with public keys; it has no secret to rotate.",
            code="wrong_auth_method",
        )
    if not application.is_active:
        raise ValidationError("A revoked application cannot get new secrets.", code="inactive")
    live = list(ClientSecret.objects.filter(application=application).live())
    if len(live) >= MAX_LIVE_SECRETS:
        raise ValidationError(
            f"This application already has {len(live)} live secrets. Revoke one before rotating again.",
            code="too_many",
        )
    stop_at = timezone.now() + overlap
    _retire(live, stop_at)
    secret, plaintext = _new_secret(application, actor)
    audit_log(
        action="tokens.m2m_app.secret_rotated",
        actor=actor,
        organization=application.organization,
        target=application,
        extra={
            "secret_hint": secret.hint,
            "overlap_seconds": int(overlap.total_seconds()),
            "previous_secrets_stop_at": stop_at.isoformat(),
            "previous_secret_hints": [old.hint for old in live],
            **_via(via),
        },
    )
    return secret, plaintext


@transaction.atomic
def client_secret_revoke(*, secret: ClientSecret, actor: User | None, via: str = "") -> ClientSecret:
    """Revoke a secret at once; tokens minted with it stop validating too."""
    secret = ClientSecret.objects.select_for_update().select_related("application").get(pk=secret.pk)
    if secret.revoked_at is not None:
        raise ValidationError("This secret is already revoked.", code="revoked")
    secret.revoked_at = timezone.now()
    secret.save(update_fields=["revoked_at", "updated_at"])
    audit_log(
        action="tokens.m2m_app.secret_revoked",
        actor=actor,
        organization=secret.application.organization,
        target=secret.application,
        extra={"secret_hint": secret.hint, "secret_id": secret.public_id, **_via(via)},
    )
    return secret


@transaction.atomic
def m2m_app_revoke(*, application: M2MApplication, actor: User | None, via: str = "") -> M2MApplication:
    """Revoke the application and all its secrets at once; all its tokens stop validating."""
    application = M2MApplication.objects.select_for_update().get(pk=application.pk)
    if application.status == M2MApplication.Status.REVOKED:
        raise ValidationError("This application is already revoked.", code="revoked")
    if application.status in (M2MApplication.Status.PENDING, M2MApplication.Status.DENIED):
        raise ValidationError(
            "This application never got a secret; deny its request instead.", code="inactive"
        )
    now = timezone.now()
    application.status = M2MApplication.Status.REVOKED
    application.revoked_at = now
    application.suspended_at = None
    application.suspension_reason = ""
    application.save(update_fields=["status", "revoked_at", "suspended_at", "suspension_reason", "updated"])
    ClientSecret.objects.filter(application=application, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    ClientPublicKey.objects.filter(application=application, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    FederatedIdentity.objects.filter(
        application=application,
        status__in=[FederatedIdentity.Status.ACTIVE, FederatedIdentity.Status.SUSPENDED],
    ).update(status=FederatedIdentity.Status.REVOKED, revoked_at=now, suspended_at=None, suspension_reason="")
    audit_log(
        action="tokens.m2m_app.revoked",
        actor=actor,
        organization=application.organization,
        target=application,
        extra={"client_id": application.client_id, **_via(via)},
    )
    return application


@transaction.atomic
def m2m_app_update(
    *,
    application: M2MApplication,
    actor: User | None,
    name: str | None = None,
    description: str | None = None,
    owner: User | None = None,
    scopes: Iterable[str] | None = None,
    via: str = "",
) -> M2MApplication:
    """Change an application's name, description, scopes or owner; its secrets and keys stay the same.

    A new name or description writes one `tokens.m2m_app.updated` event; scopes and owner go
    through governance (`scopes_changed`, `owner_reassigned`: approval of wider scopes, the
    owner's role), each with its own event. All or nothing: one transaction.
    """
    application = (
        M2MApplication.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .get(pk=application.pk)
    )
    changes: dict[str, dict[str, str]] = {}
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": "Give the application a name."})
        if name != application.name:
            changes["name"] = {"from": application.name, "to": name}
            application.name = name
    if description is not None and (description := description.strip()) != application.description:
        changes["description"] = {"from": application.description, "to": description}
        application.description = description
    if changes:
        application.save(update_fields=[*changes, "updated"])
        audit_log(
            action="tokens.m2m_app.updated",
            actor=actor,
            organization=application.organization,
            target=application,
            extra={**changes, **_via(via)},
        )
    if scopes is not None:
        names = sorted({s.name for s in _scope_rows(list(scopes))})  # unknown names: a field error
        if names != sorted(application.allowed_scopes.values_list("name", flat=True)):
            edits.credential_scopes_set(credential=application, scopes=names, actor=actor, via=via)
    if owner is not None and owner.pk != application.owner_id:
        # After the scopes: the new owner must be allowed every scope the application keeps.
        ownership.credential_reassign_owner(credential=application, owner=owner, actor=actor, via=via)
    return application


@dataclass(frozen=True)
class Move:
    """The outcome of moving an API key to an M2M application."""

    api_key: ApiKey
    application: M2MApplication
    #: The one-time client secret; None while the application waits for approval.
    client_secret: str | None
    request: CredentialRequest | None = None

    @property
    def pending(self) -> bool:
        """Return whether the application waits for an approval before it gets a secret."""
        return self.client_secret is None


@transaction.atomic
def api_key_move_to_m2m_app(
    *,
    api_key: ApiKey,
    actor: User | None,
    name: str = "",
    justification: str = "",
) -> Move:
    """Create an M2M application that takes over from an API key: same owner, scopes and environment.

    The application goes through the same approval rules as any new one: where the
    organisation approves new applications it is created pending, without a secret (its
    owner generates the secret once it is approved). The key is not touched: it keeps
    working until someone revokes it. The key's row lock and the unique `moved_from_key`
    column leave one application under concurrent moves. Both credentials get an audit event
    naming the other (`moved_to` / `moved_from`).
    """
    key = (
        ApiKey.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .get(pk=api_key.pk)
    )
    if key.state != ApiKeyStatus.ACTIVE:
        raise ValidationError(
            f"This key is {key.state}; only an active key can be moved to an M2M application.",
            code="inactive",
        )
    if key.rotated_at is not None:
        raise ValidationError(
            "This key was rotated and stops after its overlap; move its successor instead.", code="rotated"
        )
    already = M2MApplication.objects.filter(moved_from_key=key).first()
    if already is not None:
        raise ValidationError(
            f"This key was already moved to the M2M application {already.name} ({already.client_id}).",
            code="moved",
        )
    if key.owner is None:
        raise ValidationError("This key has no owner; give it one before moving it.", code="no_owner")
    organization = key.organization
    fields = {
        "organization": organization,
        "name": (name or "").strip() or key.name,
        "owner": key.owner,
        "scopes": list(key.scopes),
        "description": f"Moved from API key {key.display_prefix}",
        "moved_from_key": key,
    }
    request = None
    plaintext = None
    try:
        with transaction.atomic():
            if org_policy.approval_required(organization, "m2m_app"):
                # The request is made by whoever moves the key; from the CLI, for its owner.
                requester = actor if actor is not None and actor.is_authenticated else key.owner
                application, request = m2m_app_request(
                    requester=requester,
                    justification=(justification or "").strip()
                    or f"Moving the API key {key.display_prefix} ({key.name}) to an M2M application.",
                    **fields,
                )
            else:
                application, plaintext = m2m_app_create(actor=actor, **fields)
    except IntegrityError as exc:  # the unique moved_from_key: another move won
        raise ValidationError("This key was already moved to an M2M application.", code="moved") from exc
    audit_log(
        action="credentials.api_key.moved",
        actor=actor,
        organization=organization,
        target=key,
        extra={
            "key_id": key.key_id,
            "moved_to": application.client_id,
            "application_id": application.pk,
            "pending_approval": request is not None,
        },
    )
    audit_log(
        action="tokens.m2m_app.moved",
        actor=actor,
        organization=organization,
        target=application,
        extra={"client_id": application.client_id, "moved_from": key.key_id, "api_key_id": key.pk},
    )
    return Move(api_key=key, application=application, client_secret=plaintext, request=request)


#: Staff-only marks that trust an application across every organisation, with the audit
#: actions of setting and clearing each. Changing one asks staff for a fresh sign-in (admin).
STAFF_FLAGS = {
    # A gateway that trades any organisation's API keys for tokens (RFC 8693).
    "may_exchange_api_keys": ("tokens.m2m_app.exchange_allowed", "tokens.m2m_app.exchange_disallowed"),
    # A platform resource server that introspects any organisation's tokens (RFC 7662).
    "is_resource_server": (
        "tokens.m2m_app.resource_server_allowed",
        "tokens.m2m_app.resource_server_disallowed",
    ),
}


@transaction.atomic
def m2m_app_set_staff_flag(
    *, application: M2MApplication, flag: str, value: bool, actor: User | None
) -> M2MApplication:
    """Set or clear one of the STAFF_FLAGS on an application (staff only), with one audit event.

    Clearing takes effect at once: a gateway's exchanged tokens stop passing introspection, a
    resource server sees only its own organisation's tokens again. Unchanged: no event.
    """
    allowed_action, disallowed_action = STAFF_FLAGS[flag]
    application = (
        M2MApplication.objects.select_for_update().select_related("organization").get(pk=application.pk)
    )
    if getattr(application, flag) == value:
        return application
    setattr(application, flag, value)
    application.save(update_fields=[flag, "updated"])
    audit_log(
        action=allowed_action if value else disallowed_action,
        actor=actor,
        organization=application.organization,
        target=application,
        extra={"client_id": application.client_id},
    )
    return application


def m2m_app_set_exchange(*, application: M2MApplication, allowed: bool, actor: User | None) -> M2MApplication:
    """Allow or forbid a gateway application to exchange API keys for access tokens (staff only)."""
    return m2m_app_set_staff_flag(
        application=application, flag="may_exchange_api_keys", value=allowed, actor=actor
    )


def _new_public_key(
    application: M2MApplication,
    jwk_or_pem: str,
    actor: User | None,
    *,
    algorithm: str | None = None,
    expires_at: datetime | None = None,
) -> ClientPublicKey:
    jwk = parse_public_key(jwk_or_pem, algorithm)
    if ClientPublicKey.objects.filter(application=application, kid=jwk["kid"]).exists():
        raise ValidationError(
            {
                "public_key": "This key is already registered for this application (a revoked key cannot "
                "come back: generate a new key pair)."
            }
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    return ClientPublicKey.objects.create(
        application=application,
        kid=jwk["kid"],
        algorithm=jwk["alg"],
        public_jwk=jwk,
        # The organisation's maximum client-credential lifetime applies to keys as to secrets.
        expires_at=org_policy.check_lifetime(application.organization, "m2m_app", expires_at),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )


def _check_overlap(overlap: timedelta) -> None:
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationError({"overlap": "The overlap must be between 0 and 7 days."})


def _retire(live: list[ClientCredential], stop_at: datetime) -> list[ClientCredential]:
    """Schedule live secrets or keys to stop at `stop_at` (rotation with overlap); return those moved."""
    retiring = []
    for old in live:
        if old.expires_at is None or old.expires_at > stop_at:
            old.expires_at = stop_at
            old.save(update_fields=["expires_at", "updated_at"])
            retiring.append(old)
    return retiring


@transaction.atomic
def client_public_key_add(
    *,
    application: M2MApplication,
    jwk_or_pem: str,
    actor: User | None,
    algorithm: str | None = None,
    expires_at: datetime | None = None,
    overlap: timedelta | None = None,
    via: str = "",
) -> ClientPublicKey:
    """Register a public key of a `private_key_jwt` application (at most two live keys).

    `overlap`, when given (0 to 7 days), schedules the application's current keys to stop
    after it: rotation with overlap, like `client_secret_rotate`. The first key of an approved
    pending application activates it (only its owner may add it), as a first secret would.
    """
    if overlap is not None:
        _check_overlap(overlap)
    # Lock the application so concurrent additions serialise and see each other's keys.
    application = (
        M2MApplication.objects.select_for_update().select_related("organization").get(pk=application.pk)
    )
    if not application.uses_private_key_jwt:
        raise ValidationError(
            "This application authenticates with a client secret; it takes no public key.",
            code="wrong_auth_method",
        )
    approved = None
    if application.status == M2MApplication.Status.PENDING:
        approved = approvals.approved_create_request(application)
        if approved is None:
            raise ValidationError("This application is still waiting for approval.", code="not_approved")
        if actor is None or application.owner_id != actor.pk:
            raise ValidationError(
                "Only the application's owner can register its first key.", code="not_owner"
            )
    elif not application.is_active:
        raise ValidationError("Only an active application can get new keys.", code="inactive")
    now = timezone.now()
    live = list(ClientPublicKey.objects.filter(application=application).live(now))
    if len(live) >= MAX_LIVE_PUBLIC_KEYS:
        raise ValidationError(
            f"This application already has {len(live)} live keys. Revoke one before adding another.",
            code="too_many",
        )
    key = _new_public_key(application, jwk_or_pem, actor, algorithm=algorithm, expires_at=expires_at)
    stop_at = now + overlap if overlap is not None else None
    retiring = [old.kid for old in _retire(live, stop_at)] if stop_at is not None else []
    extra = {
        "kid": key.kid,
        "alg": key.algorithm,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }
    if stop_at is not None:
        extra.update(previous_keys_stop_at=stop_at.isoformat(), previous_kids=retiring)
    if approved is not None:
        # The first key of an approved application makes it usable, as a first secret does.
        application.status = M2MApplication.Status.ACTIVE
        application.review_due_at = now + org_policy.policy_for(application.organization).review_interval(
            "m2m_app"
        )
        application.save(update_fields=["status", "review_due_at", "updated"])
        extra.update(activated=True, request_id=approved.pk)
    extra.update(_via(via))
    audit_log(
        action="tokens.m2m_app.public_key_added",
        actor=actor,
        organization=application.organization,
        target=application,
        extra=extra,
    )
    return key


@transaction.atomic
def client_public_key_revoke(
    *, public_key: ClientPublicKey, actor: User | None, via: str = ""
) -> ClientPublicKey:
    """Revoke a public key at once; assertions it signs and tokens it minted stop working too."""
    public_key = (
        ClientPublicKey.objects.select_for_update()
        .select_related("application__organization")
        .get(pk=public_key.pk)
    )
    if public_key.revoked_at is not None:
        raise ValidationError("This key is already revoked.", code="revoked")
    public_key.revoked_at = timezone.now()
    public_key.save(update_fields=["revoked_at", "updated_at"])
    audit_log(
        action="tokens.m2m_app.public_key_revoked",
        actor=actor,
        organization=public_key.application.organization,
        target=public_key.application,
        extra={"kid": public_key.kid, "alg": public_key.algorithm, **_via(via)},
    )
    return public_key


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


def _create_signing_key(algorithm: str, material: tuple[bytes, dict] | None = None) -> SigningKey:
    encrypted, jwk = material or keys.generate_key_material(algorithm)
    return SigningKey.objects.create(
        kid=jwk["kid"], algorithm=algorithm, encrypted_private_key=encrypted, public_jwk=jwk
    )


def signing_key_ensure(algorithm: str = SigningKey.Algorithm.RS256) -> SigningKey:
    """Return the active signing key, creating the first one when none exists."""
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            key = _create_signing_key(algorithm)
            audit_log(
                action="tokens.signing_key.created",
                actor=None,
                organization=None,
                target=key,
                extra={"kid": key.kid, "algorithm": algorithm},
            )
    except IntegrityError:
        # Another process created the first key at the same moment: use theirs.
        key = SigningKey.objects.get(status=SigningKey.Status.ACTIVE)
    return key


def signing_key_rotate(
    *, actor: User | None, algorithm: str = SigningKey.Algorithm.RS256
) -> tuple[SigningKey, SigningKey | None]:
    """Retire the active key (kept in the JWKS until its tokens expire) and sign with a new one."""
    if algorithm not in SigningKey.Algorithm.values:
        raise ValidationError(f"Unsupported algorithm {algorithm!r}; use RS256 or ES256.")
    material = keys.generate_key_material(algorithm)  # slow (RSA): outside the transaction
    for attempt in range(5):
        try:
            with transaction.atomic():
                key, previous = _signing_key_rotate_once(actor=actor, algorithm=algorithm, material=material)
        except IntegrityError:
            # A concurrent rotation committed first: the row we locked is no longer the
            # active one. The one-active-key constraint caught it; try again on top of it.
            if attempt == 4:
                raise
            continue
        break
    # Switch this process now (its transaction already sees the new key) and again after
    # commit; other processes notice within PORTAL_SIGNING_KEY_REFRESH_SECONDS.
    keys.forget_loaded_key()
    transaction.on_commit(keys.forget_loaded_key)
    return key, previous


def _signing_key_rotate_once(
    *, actor: User | None, algorithm: str, material: tuple[bytes, dict]
) -> tuple[SigningKey, SigningKey | None]:
    now = timezone.now()
    previous = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE).first()
    if previous is not None:
        previous.status = SigningKey.Status.RETIRED
        previous.retired_at = now
        previous.publish_until = now + RETIRED_KEY_PUBLISH_FOR
        previous.save(update_fields=["status", "retired_at", "publish_until", "updated_at"])
    key = _create_signing_key(algorithm, material)
    audit_log(
        action="tokens.signing_key.rotated",
        actor=actor,
        organization=None,
        target=key,
        extra={
            "kid": key.kid,
            "algorithm": algorithm,
            "previous_kid": previous.kid if previous else None,
            "previous_published_until": previous.publish_until.isoformat() if previous else None,
        },
    )
    return key, previous


def signing_keys_reencrypt(*, old_encryption_keys: Iterable[str], actor: User | None) -> int:
    """Re-encrypt every stored signing key under the current PORTAL_SIGNING_KEY_ENCRYPTION_KEY.

    Each private key is decrypted with the current key or one of `old_encryption_keys` and
    encrypted again with the current one; keys already under it are left alone, so running
    it twice is harmless. All or nothing: one key that no given key opens changes nothing.
    Return how many keys were re-encrypted (one audit event when any were). Run through
    `portal.services.encryption.secrets_reencrypt`, which checks the old keys.
    """
    changed: list[str] = []
    with transaction.atomic():
        for key in SigningKey.objects.select_for_update().order_by("pk"):
            try:
                token = keys.CIPHER.reencrypt(key.encrypted_private_key, previous=old_encryption_keys)
            except InvalidFernetToken:
                raise ValidationError(
                    f"Signing key {key.kid} opens with neither the current key nor any old key given; "
                    "nothing was changed."
                ) from None
            if token is None:
                continue  # already under the current key
            key.encrypted_private_key = token
            key.save(update_fields=["encrypted_private_key", "updated_at"])
            changed.append(key.kid)
        if changed:
            audit_log(
                action="tokens.signing_key.reencrypted",
                actor=actor,
                organization=None,
                target_label=f"{len(changed)} signing key(s)",
                extra={"kids": changed},
            )
            transaction.on_commit(keys.forget_loaded_key)
    return len(changed)


@transaction.atomic
def signing_key_unpublish(*, key: SigningKey, actor: User | None) -> SigningKey:
    """Withdraw a retired key from the JWKS now, so tokens it signed stop validating (a leaked key).

    App servers drop their cached copy of the public key within a minute.
    """
    key = SigningKey.objects.select_for_update().get(pk=key.pk)
    if key.status == SigningKey.Status.ACTIVE:
        raise ValidationError("The active key cannot be withdrawn; rotate first.")
    key.publish_until = timezone.now()
    key.save(update_fields=["publish_until", "updated_at"])
    audit_log(
        action="tokens.signing_key.unpublished",
        actor=actor,
        organization=None,
        target=key,
        extra={"kid": key.kid},
    )
    transaction.on_commit(keys.forget_public_keys)
    return key


# --- governance adapter -----------------------------------------------------------------------


def _issue_first_secret(
    application: M2MApplication, actor: User | None, request: CredentialRequest
) -> tuple[str, dict]:
    """Give a pending, approved application its first secret (governance sets the status and audits)."""
    if application.uses_private_key_jwt:
        raise ValidationError(
            "This application authenticates with a public key: register its key instead.", code="no_secret"
        )
    secret, plaintext = _new_secret(application, actor)
    return plaintext, {"client_id": application.client_id, "secret_hint": secret.hint}


def _scopes_for(ids: Iterable[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    through = M2MApplication.allowed_scopes.through.objects.filter(m2mapplication_id__in=list(ids))
    for pk, name in through.values_list("m2mapplication_id", "scope__name").order_by("scope__name"):
        result.setdefault(pk, []).append(name)
    return result


def _set_scopes(application: M2MApplication, names: list[str]) -> None:
    application.allowed_scopes.set(_scope_rows(list(names)))


def _revoke(application: M2MApplication, actor: User | None, reason: str) -> M2MApplication:
    return m2m_app_revoke(application=application, actor=actor)


def _moved_links(ids: Iterable[int]) -> dict[int, MovedLink]:
    """Return the API key each application was moved from."""
    rows = M2MApplication.objects.filter(pk__in=list(ids), moved_from_key__isnull=False).values_list(
        "pk", "moved_from_key__pk", "moved_from_key__key_id", "moved_from_key__name"
    )
    return {pk: MovedLink("from", "api_key", key_pk, key_id, name) for pk, key_pk, key_id, name in rows}


def _detail_path(org_slug: str, pk: int, ref: str) -> str:
    from django.urls import reverse

    return reverse("org-app-detail", kwargs={"org_slug": org_slug, "app_id": pk})


def client_secret_find(raw: str) -> ClientSecret | None:
    """Return the client secret whose digest matches a presented `ips_…` secret, whatever its state.

    For leak reports, where no client id comes with the secret: its digest under each
    configured pepper is looked up in one indexed query, then compared in constant time.
    """
    if (
        not isinstance(raw, str)
        or len(raw) != len(CLIENT_SECRET_PREFIX) + CLIENT_SECRET_BODY_LENGTH
        or not raw.startswith(CLIENT_SECRET_PREFIX)
        or not is_base62(raw[len(CLIENT_SECRET_PREFIX) :])
    ):
        return None
    _current, table = peppers()
    candidates = {pepper_id: keyed_digest(raw, pepper_id=pepper_id)[1] for pepper_id in table}
    for secret in ClientSecret.objects.filter(digest__in=list(candidates.values())).select_related(
        "application"
    ):
        expected = candidates.get(secret.pepper_id)
        if expected is not None and hmac.compare_digest(expected, secret.digest):
            return secret
    return None


def _match_secret(raw: str):
    from credentials.governance.registry import SecretMatch

    secret = client_secret_find(raw)
    if secret is None:
        return None
    return SecretMatch(
        object_id=secret.application_id,
        secret_id=secret.pk,
        secret_hint=f"{secret.hint}…",
        secret_live=secret.is_live,
    )


def _revoke_secret(application: M2MApplication, match, actor: User | None) -> None:
    """Revoke just the leaked secret; tokens minted with it stop validating (their `csid`)."""
    client_secret_revoke(secret=ClientSecret.objects.get(pk=match.secret_id), actor=actor)


def _people_behind(principal) -> set[int]:
    """Return who stands behind the application whose token a principal presented.

    Its owner, its creator, and whoever created one of its live secrets or public keys: each
    of them could have minted that token.
    """
    client_id = principal.extra.get("client_id") if principal.credential_type == "access_token" else None
    if not client_id:
        return set()
    application = M2MApplication.objects.filter(client_id=client_id).first()
    if application is None:
        return set()
    people = {application.owner_id, application.created_by_id}
    for model in (ClientSecret, ClientPublicKey):
        people |= set(
            model.objects.live().filter(application=application).values_list("created_by_id", flat=True)
        )
    return people


def governed_kind():
    """Return the governance description of M2M applications (registered in TokensConfig.ready)."""
    from credentials.governance.registry import TOKEN_MINTING, GovernedKind, KindPolicy
    from tokens.selectors import m2m_apps_inventory

    return GovernedKind(
        key="m2m_app",
        label="M2M application",
        lifecycle=TOKEN_MINTING,
        audit_prefix="tokens.m2m_app",
        model=M2MApplication,
        touch_field="updated",
        ref_attr="client_id",
        url_kwarg="app_id",
        lookup_field="pk",
        url_name="org-app",
        issue_url_name="org-app-issue-secret",
        inventory_queryset=m2m_apps_inventory,
        scopes_of=lambda application: list(application.allowed_scopes.values_list("name", flat=True)),
        scopes_for=_scopes_for,
        set_scopes=_set_scopes,
        issue_secret=_issue_first_secret,
        revoke=_revoke,
        # Token checks read the application's status on every request: nothing is cached.
        changed=lambda application: None,
        moved_links=_moved_links,
        detail_path=_detail_path,
        filter_scope=lambda qs, scope: qs.filter(allowed_scopes__name=scope),
        match_secret=_match_secret,
        revoke_secret=_revoke_secret,
        people_behind=_people_behind,
        policy=KindPolicy(
            approve_new="approve_new_m2m_apps",
            review_interval_days="m2m_app_review_interval_days",
            max_lifetime_days="client_secret_max_lifetime_days",
        ),
        # Audit verb (`tokens.m2m_app.<verb>`) -> webhook event (credentials.webhooks).
        webhook_events={
            "created": "created",
            "secret_issued": "created",
            "secret_rotated": "rotated",
            # The first public key of an approved private_key_jwt application says `activated`:
            # it is sent as `created` (credentials.webhooks.events).
            "public_key_added": "rotated",
            "revoked": "revoked",
            "secret_revoked": "revoked",
            "public_key_revoked": "revoked",
            "orphaned": "orphaned",
            "suspended": "suspended",
            "leaked": "leaked",
            "policy_changed": "policy_changed",
            "policy_flagged": "against_policy",
        },
    )


# --- federated identities (workload identity federation, tokens.federation) ----------------------

FEDERATED_KIND = "federated_id"


def _may_manage_application(actor: User | None, application: M2MApplication) -> bool:
    return (
        actor is None
        or application.owner_id == actor.pk
        or ownership.is_manager(actor, application.organization)
    )


@transaction.atomic
def federated_identity_create(
    *,
    application: M2MApplication,
    actor: User | None,
    issuer: str,
    subject: str,
    audience: str = "",
    conditions=None,
    max_token_age: int | None = None,
    preset: str = FederatedIdentity.Preset.CUSTOM,
    jwks=None,
    name: str = "",
    owner: User | None = None,
    justification: str = "",
) -> tuple[FederatedIdentity, CredentialRequest | None]:
    """Trust an external issuer's tokens for an application; return the trust and its approval request.

    When the organisation requires approval for new M2M credentials (and a person asks), the
    trust waits as `pending` with a request; its owner activates it once approved. A command
    run by an operator (`actor` None) creates it active, as `create_m2m_app` does.
    """
    from tokens import federation

    application = (
        M2MApplication.objects.select_for_update()
        .select_related("organization", "owner")
        .get(pk=application.pk)
    )
    organization = application.organization
    if not application.is_active:
        raise ValidationError("Only an active application can trust an external issuer.")
    if not _may_manage_application(actor, application):
        raise ValidationError(
            "Only the application's owner or an organisation admin can add a trust.", code="not_owner"
        )
    if preset not in FederatedIdentity.Preset.values:
        raise ValidationError({"preset": "Choose one of the presets or a custom issuer."})
    owner = owner or application.owner
    ownership.check_owner_is_member(organization, owner)
    static_jwks = federation.clean_jwks(jwks)
    issuer = federation.clean_issuer(issuer, has_jwks=static_jwks is not None)
    subject = federation.clean_subject(subject, preset)
    conditions = federation.clean_conditions(conditions or {})
    audience = (audience or "").strip() or settings.PORTAL_ISSUER
    if len(audience) > 255:
        raise ValidationError({"audience": "The audience is too long."})
    found = federation.PRESETS.get(preset)
    if max_token_age is None:
        max_token_age = (
            found.max_token_age if found else FederatedIdentity._meta.get_field("max_token_age").default
        )
    if not MIN_FEDERATED_TOKEN_AGE <= max_token_age <= MAX_FEDERATED_TOKEN_AGE:
        raise ValidationError(
            {"max_token_age": f"Use between {MIN_FEDERATED_TOKEN_AGE} and {MAX_FEDERATED_TOKEN_AGE} seconds."}
        )
    name = (name or "").strip()[:255] or f"{found.label if found else 'Trust'}: {subject}"[:255]
    needs_approval = actor is not None and org_policy.approval_required(organization, FEDERATED_KIND)
    identity = FederatedIdentity.objects.create(
        organization=organization,
        application=application,
        owner=owner,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        name=name,
        preset=preset,
        issuer=issuer,
        jwks=static_jwks,
        audience=audience,
        subject=subject,
        conditions=conditions,
        max_token_age=max_token_age,
        status=FederatedIdentity.Status.PENDING if needs_approval else FederatedIdentity.Status.ACTIVE,
        review_due_at=None if needs_approval else org_policy.review_due_from(organization, FEDERATED_KIND),
    )
    audit_log(
        action="tokens.federated_identity.created",
        actor=actor,
        organization=organization,
        target=identity,
        extra={
            "id": identity.public_id,
            "client_id": application.client_id,
            "owner": owner.email,
            "preset": preset,
            "issuer": issuer,
            "subject": subject,
            "audience": audience,
            "conditions": conditions,
            "max_token_age": max_token_age,
            "static_jwks": static_jwks is not None,
        },
    )
    request = None
    if needs_approval:
        request = approvals.credential_request_create(
            credential=identity,
            requester=actor,
            request_type=RequestType.CREATE,
            justification=justification,
        )
    return identity, request


@transaction.atomic
def federated_identity_revoke(*, identity: FederatedIdentity, actor: User | None) -> FederatedIdentity:
    """Remove a trust at once: its tokens are refused and the tokens it minted stop validating."""
    identity = (
        FederatedIdentity.objects.select_for_update(of=("self",))
        .select_related("organization", "application")
        .get(pk=identity.pk)
    )
    if identity.status == FederatedIdentity.Status.REVOKED:
        raise ValidationError("This trust is already removed.")
    if identity.status in (FederatedIdentity.Status.PENDING, FederatedIdentity.Status.DENIED):
        raise ValidationError("This trust was never active; deny or cancel its request instead.")
    identity.status = FederatedIdentity.Status.REVOKED
    identity.revoked_at = timezone.now()
    identity.suspended_at = None
    identity.suspension_reason = ""
    identity.save(update_fields=["status", "revoked_at", "suspended_at", "suspension_reason", "updated_at"])
    audit_log(
        action="tokens.federated_identity.revoked",
        actor=actor,
        organization=identity.organization,
        target=identity,
        extra={"id": identity.public_id, "client_id": identity.application.client_id},
    )
    return identity


def _activate_federated_identity(
    identity: FederatedIdentity, actor: User | None, request
) -> tuple[str, dict]:
    """Make an approved trust usable (governance sets the status and audits); nothing secret exists."""
    if not identity.application.is_active:
        raise ValidationError("The application is no longer active.", code="inactive")
    return "", {"id": identity.public_id, "client_id": identity.application.client_id}


def _federated_scopes_for(ids: Iterable[int]) -> dict[int, list[str]]:
    """A trust acts with its application's scopes: {trust pk: the application's scope names}."""
    rows = dict(FederatedIdentity.objects.filter(pk__in=list(ids)).values_list("pk", "application_id"))
    by_app = _scopes_for(set(rows.values()))
    return {pk: by_app.get(app_id, []) for pk, app_id in rows.items()}


def _federated_set_scopes(identity: FederatedIdentity, names: list[str]) -> None:
    raise ValidationError(
        {"scopes": "A federated identity has its application's scopes; change the application's."},
        code="no_scopes",
    )


def _federated_detail_path(org_slug: str, pk: int, ref: str) -> str:
    from django.urls import reverse

    return reverse("org-federated-detail", kwargs={"org_slug": org_slug, "identity_id": pk})


def federated_governed_kind():
    """Return the governance description of federated identities (registered in TokensConfig.ready)."""
    from credentials.governance.registry import FEDERATED, GovernedKind
    from tokens.selectors import federated_identities_inventory

    return GovernedKind(
        key=FEDERATED_KIND,
        label="Federated identity",
        lifecycle=FEDERATED,
        audit_prefix="tokens.federated_identity",
        model=FederatedIdentity,
        touch_field="updated_at",
        ref_attr="public_id",
        url_kwarg="identity_id",
        lookup_field="pk",
        url_name="org-federated",
        issue_url_name="org-federated-activate",
        inventory_queryset=federated_identities_inventory,
        # A trust has no scopes of its own (reviews and scope requests do not apply); the
        # inventory shows its application's, which are what its tokens carry.
        scopes_of=lambda identity: [],
        scopes_for=_federated_scopes_for,
        set_scopes=_federated_set_scopes,
        issue_secret=_activate_federated_identity,
        revoke=lambda identity, actor, reason: federated_identity_revoke(identity=identity, actor=actor),
        # The token endpoint and token checks read the trust's status on every request.
        changed=lambda identity: None,
        detail_path=_federated_detail_path,
        filter_scope=lambda qs, scope: qs.filter(application__allowed_scopes__name=scope),
        # Approval of new ones, review interval: the organisation's M2M application settings.
        policy_key="m2m_app",
        webhook_events={
            "created": "created",
            "secret_issued": "created",
            "revoked": "revoked",
            "suspended": "suspended",
            "orphaned": "orphaned",
        },
    )
