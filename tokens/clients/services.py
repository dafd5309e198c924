"""Writes for M2M applications, their client secrets and public keys; one audit event per change."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict, Unpack

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from credentials import policy
from credentials.api_keys.models import ApiKey
from credentials.governance import approvals, edits, org_policy, ownership
from credentials.governance.common import audit_change, credential_audit, locked_credential, save_fields
from credentials.governance.models import CredentialRequest, RequestType
from credentials.governance.registry import kind_of
from credentials.insight.services import scope_use_carry_over
from credentials.leaks.models import LeakAction, LeakReport
from credentials.models import Scope
from portal.infra.crypto import is_base62, keyed_digest, peppers, random_base62
from portal.models import Organization, User
from tokens.catalogue import check_audiences, tidy_audiences
from tokens.clients.public_keys import parse_public_key
from tokens.clients.quota import FIELDS as QUOTA_FIELDS
from tokens.clients.quota import clean_token_quota, set_token_quota, token_quota_of
from tokens.models import (
    DEFAULT_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME,
    MIN_TOKEN_LIFETIME,
    ClientCredential,
    ClientPublicKey,
    ClientSecret,
    FederatedIdentity,
    M2MApplication,
)

CLIENT_SECRET_PREFIX = "ips_"
CLIENT_SECRET_BODY_LENGTH = 32  # 32 base62 characters = 190 bits
MAX_LIVE_SECRETS = 5
#: Two keys at once are enough to rotate with overlap.
MAX_LIVE_PUBLIC_KEYS = 2
MAX_OVERLAP = timedelta(days=7)
NAME_MAX_LENGTH = M2MApplication._meta.get_field("name").max_length
DEFAULT_OVERLAP = timedelta(hours=24)


def _new_secret(application: M2MApplication, actor: User | None) -> tuple[ClientSecret, str]:
    plaintext = CLIENT_SECRET_PREFIX + random_base62(CLIENT_SECRET_BODY_LENGTH)
    pepper_id, digest = keyed_digest(plaintext)
    # The organisation's maximum client-secret lifetime, if it sets one.
    expires_at = org_policy.check_lifetime(application.organization, "m2m_app", None)
    key = application.moved_from_key if application.moved_from_key_id else None
    if key is not None and key.expires_at is not None and not application.secrets.exists():
        # The first secret of an application a key moved to is no wider than the key: it stops
        # when the key would have (the authority rule). Later rotations follow the policy.
        if key.expires_at <= timezone.now():
            # Approved after the key expired: its secret would be dead before it is shown.
            raise ValidationError(
                f"This application replaces the API key {key.display_prefix}, which expired on "
                f"{key.expires_at:%Y-%m-%d %H:%M} UTC, and its first secret cannot outlive the key. "
                "Ask for a new M2M application instead.",
                code="key_expired",
            )
        expires_at = min(expires_at or key.expires_at, key.expires_at)
    secret = ClientSecret.objects.create(
        expires_at=expires_at,
        application=application,
        public_id=random_base62(12),
        hint=plaintext[: len(CLIENT_SECRET_PREFIX) + 4],
        digest=digest,
        pepper_id=pepper_id,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    return secret, plaintext


class ApplicationFields(TypedDict, total=False):
    """What describes a new application, for `m2m_app_create` and `m2m_app_request`."""

    organization: Required[Organization]
    name: Required[str]
    owner: Required[User]
    scopes: Iterable[Scope | str]
    audiences: Iterable[str]
    token_lifetime: int
    description: str
    auth_method: str  # an M2MApplication.AuthMethod value; client_secret_basic by default
    token_quota: dict[str, Any] | None  # tokens.clients.quota
    moved_from_key: ApiKey | None
    # The review schedule of the credential it takes over from (a move): see `_new_application`.
    review_due_at: datetime | None
    last_reviewed_at: datetime | None
    last_reviewed_by: User | None


@transaction.atomic
def m2m_app_create(
    *,
    actor: User | None,
    public_key: str = "",
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    via: str = "",
    **fields: Unpack[ApplicationFields],
) -> tuple[M2MApplication, str | None]:
    """Create an application with its first client secret; return the row and the one-time secret.

    A `private_key_jwt` application gets no secret (None is returned instead): it gets the
    `public_key` given (a public JWK or PEM), or none yet, and its owner registers one later.
    `via` names the interface or credential that made the change (`api`, `api_key:…`), for the audit.
    """
    application, scope_rows = _new_application(
        actor=actor,
        status=M2MApplication.Status.ACTIVE,
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
        **fields,
    )
    extra = {
        "client_id": application.client_id,
        "owner": application.owner.email,
        "scopes": sorted(s.name for s in scope_rows),
        "audiences": application.allowed_audiences,
        "token_lifetime": application.token_lifetime,
    }
    plaintext = None
    if application.uses_private_key_jwt:
        extra["auth_method"] = application.token_endpoint_auth_method
        if public_key.strip():
            key = _new_public_key(application, public_key, actor)
            extra.update(public_key_kid=key.kid, public_key_alg=key.algorithm)
    elif public_key.strip():
        raise ValidationError({"public_key": "Only a private_key_jwt application takes a public key."})
    else:
        secret, plaintext = _new_secret(application, actor)
        extra["secret_hint"] = secret.hint
    if application.allowed_ips:
        extra["allowed_ips"] = application.allowed_ips
    if application.rate_limit:
        extra["rate_limit"] = application.rate_limit
    if fields.get("token_quota") is not None:
        extra["token_quota"] = token_quota_of(application)
    if application.moved_from_key is not None:
        extra["moved_from"] = application.moved_from_key.key_id
    credential_audit("tokens.m2m_app.created", application, actor=actor, extra=extra, via=via)
    return application, plaintext


def scope_rows_of(scopes: Iterable[Scope | str]) -> list[Scope]:
    """Return the scope rows for names or rows; an unknown name is a field error."""
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


def client_secret_issue_first(
    application: M2MApplication, actor: User | None, request: CredentialRequest
) -> tuple[str, dict]:
    """Give a pending, approved application its first secret (governance sets the status and audits)."""
    if application.uses_private_key_jwt:
        raise ValidationError(
            "This application authenticates with a public key: register its key instead.", code="no_secret"
        )
    secret, plaintext = _new_secret(application, actor)
    if application.moved_from_key_id:
        # The key's scope use since the move (it worked while the request waited): the
        # application starts from all of it (tokens.clients.moves).
        scope_use_carry_over(
            organization_id=application.organization_id,
            from_kind="api_key",
            from_ref=application.moved_from_key.key_id,
            to_kind="m2m_app",
            to_ref=application.client_id,
        )
    return plaintext, {"client_id": application.client_id, "secret_hint": secret.hint}


def _first_review_due(organization: Organization, carried: datetime | None) -> datetime:
    """Return when a new application is first due for review: the policy's, or an earlier `carried` date."""
    due = org_policy.review_due_from(organization, "m2m_app")
    return due if carried is None else min(carried, due)


def _new_application(
    *,
    organization: Organization,
    name: str,
    owner: User,
    actor: User | None,
    status: str,
    scopes: Iterable[Scope | str] = (),
    audiences: Iterable[str] = (),
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    description: str = "",
    auth_method: str = M2MApplication.AuthMethod.CLIENT_SECRET,
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    token_quota: dict[str, Any] | None = None,
    moved_from_key: ApiKey | None = None,
    review_due_at: datetime | None = None,
    last_reviewed_at: datetime | None = None,
    last_reviewed_by: User | None = None,
) -> tuple[M2MApplication, list[Scope]]:
    """Store a new application (active or pending) with its scopes; the callers audit it.

    `review_due_at`: the review date of the credential it takes over from (a moved key), kept
    when it comes before the policy's interval from now, so a credential overdue for review does
    not escape it by being replaced; with `last_reviewed_at`/`_by` the review it last had.
    """
    name = name.strip()
    allowed_ips = policy.clean_allowed_ips(list(allowed_ips))
    rate_limit = policy.clean_rate_limit(rate_limit)
    quota = clean_token_quota(token_quota)
    if not name:
        raise ValidationError({"name": "Give the application a name."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"Use at most {NAME_MAX_LENGTH} characters."})
    ownership.check_owner_is_member(organization, owner)
    # The policy row next (memberships, policy, credentials): a policy change either commits
    # first and judges this application by its rules, or waits and flags it.
    org_policy.policy_locked(organization)
    if not MIN_TOKEN_LIFETIME <= token_lifetime <= MAX_TOKEN_LIFETIME:
        raise ValidationError(
            {"token_lifetime": f"Use between {MIN_TOKEN_LIFETIME} and {MAX_TOKEN_LIFETIME} seconds."}
        )
    if auth_method not in M2MApplication.AuthMethod.values:
        raise ValidationError({"auth_method": "Choose client_secret_basic or private_key_jwt."})
    scope_rows = scope_rows_of(scopes)
    ownership.check_owner_may_hold(organization, owner, [s.name for s in scope_rows])
    application = M2MApplication(
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
        **{field: quota[key] for key, field in QUOTA_FIELDS.items()},
        environment=moved_from_key.environment if moved_from_key is not None else "",
        review_due_at=_first_review_due(organization, review_due_at)
        if status == M2MApplication.Status.ACTIVE
        else None,
        last_reviewed_at=last_reviewed_at,
        last_reviewed_by=last_reviewed_by,
    )
    if status == M2MApplication.Status.ACTIVE:
        # The organisation's runtime rules (a pending one is judged with its request, in governance).
        application.rate_limit = org_policy.runtime_policy_for_new(
            application, allowed_ips=allowed_ips, rate_limit=rate_limit
        )
    application.save(force_insert=True)
    application.allowed_scopes.set(scope_rows)
    return application, scope_rows


@transaction.atomic
def m2m_app_request(
    *,
    requester: User,
    justification: str,
    allowed_ips: Iterable[str] = (),
    rate_limit: dict[str, int] | None = None,
    via: str = "",
    **fields: Unpack[ApplicationFields],
) -> tuple[M2MApplication, CredentialRequest]:
    """Store a pending application (a client id, no secret) and ask the organisation's approvers for it.

    A pending `private_key_jwt` application holds no key either: after approval its owner
    registers the first one (`client_public_key_add`), which activates it.
    """
    application, scope_rows = _new_application(
        actor=requester, status=M2MApplication.Status.PENDING, **fields
    )
    request = approvals.credential_request_create(
        credential=application,
        requester=requester,
        request_type=RequestType.CREATE,
        justification=justification,
        requested_scopes=[s.name for s in scope_rows],
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
        via=via,
    )
    return application, request


@transaction.atomic
def m2m_app_token_quota_set(
    *, application: M2MApplication, actor: User | None, token_quota: dict[str, Any] | None, via: str = ""
) -> M2MApplication:
    """Change the application's token issuance quota: one audit row (`policy_changed`, as the runtime
    policy), effective on the next token request. Keys left out of `token_quota` keep their value.
    """
    application = locked_credential(application)
    before = token_quota_of(application)
    after = clean_token_quota(token_quota, before)
    if after == before:
        return application
    set_token_quota(application, after)
    kind = kind_of(application)
    save_fields(application, kind, *QUOTA_FIELDS.values())
    extra: dict[str, Any] = {"token_quota": {"from": before, "to": after}}
    if via:
        extra["via"] = via
    audit_change(kind, "policy_changed", credential=application, actor=actor, extra=extra)
    kind.changed(application)
    return application


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
        raise ValidationError(f"A {application.status} application cannot get new secrets.", code="inactive")
    live = list(ClientSecret.objects.filter(application=application).live())
    if len(live) >= MAX_LIVE_SECRETS:
        raise ValidationError(
            f"This application already has {len(live)} live secrets. Revoke one before rotating again.",
            code="too_many",
        )
    if overlap and _may_hold_a_leaked_secret(application, live):
        raise ValidationError(
            {"overlap": "A secret of this application was reported leaked: rotate with no overlap."},
            code="leaked",
        )
    now = timezone.now()
    stop_at = now + overlap
    _retire(live, now, stop_at)
    secret, plaintext = _new_secret(application, actor)
    credential_audit(
        "tokens.m2m_app.secret_rotated",
        application,
        actor=actor,
        extra={
            "secret_hint": secret.hint,
            "overlap_seconds": int(overlap.total_seconds()),
            "previous_secrets_stop_at": stop_at.isoformat(),
            "previous_secret_hints": [old.hint for old in live],
        },
        via=via,
    )
    return secret, plaintext


@transaction.atomic
def client_secret_revoke(*, secret: ClientSecret, actor: User | None, via: str = "") -> ClientSecret:
    """Revoke a secret at once; tokens minted with it stop validating too."""
    return _revoke_credential(
        secret,
        actor=actor,
        action="tokens.m2m_app.secret_revoked",
        already="This secret is already revoked.",
        extra=lambda secret: {"secret_hint": secret.hint, "secret_id": secret.public_id},
        via=via,
    )


def _revoke_credential(
    credential: ClientCredential,
    *,
    actor: User | None,
    action: str,
    already: str,
    extra: Callable[[ClientCredential], dict],
    via: str,
) -> ClientCredential:
    """Revoke a secret or public key under a row lock, with its application's audit event.

    The application is locked first, as rotation and revocation of the application lock it
    before its secrets and keys: the other order deadlocked with them on PostgreSQL.
    """
    M2MApplication.objects.select_for_update(of=("self",)).filter(pk=credential.application_id).first()
    credential = (
        type(credential)
        .objects.select_for_update(of=("self",))
        .select_related("application__organization")
        .get(pk=credential.pk)
    )
    if credential.revoked_at is not None:
        raise ValidationError(already, code="revoked")
    credential.revoked_at = timezone.now()
    credential.save(update_fields=["revoked_at", "updated_at"])
    credential_audit(action, credential.application, actor=actor, extra=extra(credential), via=via)
    return credential


@transaction.atomic
def m2m_app_revoke(*, application: M2MApplication, actor: User | None, via: str = "") -> M2MApplication:
    """Revoke the application and all its secrets at once; all its tokens stop validating.

    An approved application whose secret was never generated ends `denied`, not `revoked`. Its
    trusts go with it, and the requests still waiting about it or its trusts are closed as
    cancelled (a trust waiting for approval ends `denied`), so no approver decides on them.
    """
    # The waiting requests and trusts before the application, in the order a decision (its
    # request, then the credential) and a trust's activation (the trust, then its application)
    # lock them: taking the application first deadlocked with either.
    _lock_waiting(application)
    application = M2MApplication.objects.select_for_update().get(pk=application.pk)
    if application.status == M2MApplication.Status.REVOKED:
        raise ValidationError("This application is already revoked.", code="revoked")
    if application.status == M2MApplication.Status.DENIED or (
        application.status == M2MApplication.Status.PENDING
        and approvals.approved_create_request(application) is None
    ):
        raise ValidationError(
            "This application never got a secret; deny its request instead.", code="inactive"
        )
    # An approved application whose secret was never generated (say, its key expired since) may be
    # withdrawn. Having had no secret, it ends `denied`, the state of one never issued, as
    # api_key_revoke does; a moved key's move is then undone (tokens.clients.moves).
    never_issued = application.status == M2MApplication.Status.PENDING
    now = timezone.now()
    application.status = M2MApplication.Status.DENIED if never_issued else M2MApplication.Status.REVOKED
    application.revoked_at = None if never_issued else now
    application.suspended_at = None
    application.suspension_reason = ""
    application.save(update_fields=["status", "revoked_at", "suspended_at", "suspension_reason", "updated"])
    ClientSecret.objects.filter(application=application, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    ClientPublicKey.objects.filter(application=application, revoked_at__isnull=True).update(
        revoked_at=now, updated_at=now
    )
    credential_audit(
        "tokens.m2m_app.revoked",
        application,
        actor=actor,
        extra={"client_id": application.client_id, **({"never_issued": True} if never_issued else {})},
        via=via,
    )
    # Requests still waiting (a trust's, a scope increase) would stay in the approvers' queue with
    # nothing left to decide: each is closed as a withdrawn one is, with its one event
    # (`credentials.request.cancelled`); a trust it asked for ends `denied`. Read again under the
    # application's lock: one made since the first look is closed too.
    for request in _lock_waiting(application):
        approvals.locked_request_cancel(
            request,
            actor=actor,
            extra={
                "reason": "application_revoked",
                "client_id": application.client_id,
                **({"via": via} if via else {}),
            },
        )
    # Its trusts go with it: each is a credential of its own, so each removal is audited (and so
    # sent to webhooks) as when it is removed by itself (tokens.federation.services). One approved
    # but never activated (still pending) ends `denied`, as the application does.
    trusts = FederatedIdentity.objects.select_for_update(of=("self",)).filter(
        application=application,
        status__in=[
            FederatedIdentity.Status.ACTIVE,
            FederatedIdentity.Status.SUSPENDED,
            FederatedIdentity.Status.PENDING,
        ],
    )
    for identity in trusts.select_related("organization").order_by("pk"):
        trust_never_issued = identity.status == FederatedIdentity.Status.PENDING
        identity.status = (
            FederatedIdentity.Status.DENIED if trust_never_issued else FederatedIdentity.Status.REVOKED
        )
        identity.revoked_at = None if trust_never_issued else now
        identity.suspended_at = None
        identity.suspension_reason = ""
        identity.save(
            update_fields=["status", "revoked_at", "suspended_at", "suspension_reason", "updated_at"]
        )
        credential_audit(
            "tokens.federated_identity.revoked",
            identity,
            actor=actor,
            extra={
                "id": identity.public_id,
                "client_id": application.client_id,
                "with_application": True,
                **({"never_issued": True} if trust_never_issued else {}),
            },
            via=via,
        )
    return application


def _lock_waiting(application: M2MApplication) -> list[CredentialRequest]:
    """Lock the waiting requests about an application and its waiting trusts, then those trusts.

    Return the requests, oldest first.
    """
    trusts = list(
        FederatedIdentity.objects.filter(
            application_id=application.pk, status=FederatedIdentity.Status.PENDING
        ).order_by("pk")
    )
    requests = approvals.waiting_requests_locked([application, *trusts])
    locked = FederatedIdentity.objects.select_for_update(of=("self",)).filter(pk__in=[t.pk for t in trusts])
    list(locked.order_by("pk"))
    return requests


@transaction.atomic
def m2m_app_update(
    *,
    application: M2MApplication,
    actor: User | None,
    name: str | None = None,
    description: str | None = None,
    owner: User | None = None,
    scopes: Iterable[str] | None = None,
    audiences: list[str] | None = None,
    token_lifetime: int | None = None,
    via: str = "",
) -> M2MApplication:
    """Change an application's name, description, scopes or owner (and, staff in the admin, its
    audiences and token lifetime); its secrets and keys stay the same.

    A new name, description, audience list or lifetime writes one `tokens.m2m_app.updated`
    event; scopes and owner go through governance (`scopes_changed`, `owner_reassigned`:
    approval of wider scopes, the owner's role), each with its own event. All or nothing: one
    transaction.
    """
    if owner is not None:
        # Memberships before credentials (ownership.lock_membership), as api_key_update: a removal
        # holds the organisation's owners' rows and waits for this application.
        ownership.lock_membership(application.organization_id, owner.pk)
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
    if audiences is not None:
        # Stored as checked (stripped, deduplicated): " https://api…" would never match a request.
        audiences = tidy_audiences(audiences, field="allowed_audiences")
    if audiences is not None and audiences != application.allowed_audiences:
        added = [a for a in audiences if a not in application.allowed_audiences]
        check_audiences(organization=application.organization, audiences=added, field="allowed_audiences")
        changes["allowed_audiences"] = {"from": application.allowed_audiences, "to": audiences}
        application.allowed_audiences = audiences
    if token_lifetime is not None and token_lifetime != application.token_lifetime:
        changes["token_lifetime"] = {"from": application.token_lifetime, "to": token_lifetime}
        application.token_lifetime = token_lifetime
    if changes:
        application.save(update_fields=[*changes, "updated"])
        credential_audit("tokens.m2m_app.updated", application, actor=actor, extra=changes, via=via)
    if scopes is not None:
        names = sorted({s.name for s in scope_rows_of(list(scopes))})  # unknown names: a field error
        if names != sorted(application.allowed_scopes.values_list("name", flat=True)):
            edits.credential_scopes_set(credential=application, scopes=names, actor=actor, via=via)
    if owner is not None and (owner.pk != application.owner_id or application.orphaned_at is not None):
        # After the scopes: the new owner must be allowed every scope the application keeps.
        ownership.credential_reassign_owner(credential=application, owner=owner, actor=actor, via=via)
    return application


#: Staff-only marks that trust an application across every organisation, with the audit
#: actions of setting and clearing each. Changing one asks staff for a fresh sign-in (admin).
STAFF_FLAGS = {
    # A gateway that trades any organisation's API keys for tokens (RFC 8693).
    "may_exchange_api_keys": ("tokens.m2m_app.exchange_allowed", "tokens.m2m_app.exchange_disallowed"),
    # A gateway whose `client_ip` at token exchange is believed: the exchanged key's IP
    # allowlist is checked against it (docs/m2m.md#exchanging-api-keys-at-a-gateway-rfc-8693).
    "may_report_client_ip": (
        "tokens.m2m_app.client_ip_reporting_allowed",
        "tokens.m2m_app.client_ip_reporting_disallowed",
    ),
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
        M2MApplication.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=application.pk)
    )
    if getattr(application, flag) == value:
        return application
    setattr(application, flag, value)
    application.save(update_fields=[flag, "updated"])
    credential_audit(
        allowed_action if value else disallowed_action,
        application,
        actor=actor,
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


def _may_hold_a_leaked_secret(application: M2MApplication, live: list[ClientSecret]) -> bool:
    """Return whether one of the live secrets may be one a leak report suspended the application for.

    Under the `suspend` leak policy the leaked secret is not revoked, and a restore makes it work
    again; the report names no secret, so any secret older than the last such report may be it.
    (Under `revoke` the leaked secret is revoked at once and no longer live.)
    """
    reported = LeakReport.objects.filter(
        kind="m2m_app", object_id=application.pk, action_taken=LeakAction.SUSPENDED
    ).aggregate(last=Max("received_at"))["last"]
    return reported is not None and any(secret.created_at <= reported for secret in live)


def _check_overlap(overlap: timedelta) -> None:
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationError({"overlap": "The overlap must be between 0 and 7 days."})


def _retire(live: list[ClientCredential], now: datetime, stop_at: datetime) -> list[ClientCredential]:
    """Mark live secrets or keys replaced at `now` and schedule them to stop at `stop_at` (rotation
    with overlap); return those whose expiry moved.

    `retired_at` is what makes one `expiring` (in a rotation's overlap), not its expiry alone: a
    credential that stops sooner anyway (its policy lifetime) keeps that expiry but is retired too.
    """
    retiring = []
    for old in live:
        fields = []
        if old.expires_at is None or old.expires_at > stop_at:
            old.expires_at = stop_at
            fields.append("expires_at")
            retiring.append(old)
        if old.retired_at is None:  # retired by an earlier rotation: it keeps that time
            old.retired_at = now
            fields.append("retired_at")
        if fields:
            old.save(update_fields=[*fields, "updated_at"])
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
        M2MApplication.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=application.pk)
    )
    if not application.uses_private_key_jwt:
        raise ValidationError(
            "This application authenticates with a client secret; it takes no public key.",
            code="wrong_auth_method",
        )
    approved = None
    if application.status == M2MApplication.Status.PENDING:
        # The same rules as a first secret (`credential_secret_issue`): approved, and not since
        # orphaned (a leaver who rejoins does not collect it).
        approved = approvals.activation_request(application)
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
    retiring = [old.kid for old in _retire(live, now, stop_at)] if stop_at is not None else []
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
        extra.update(activated=True, request_id=approved.pk, type=approved.request_type)
    credential_audit("tokens.m2m_app.public_key_added", application, actor=actor, extra=extra, via=via)
    return key


@transaction.atomic
def client_public_key_revoke(
    *, public_key: ClientPublicKey, actor: User | None, via: str = ""
) -> ClientPublicKey:
    """Revoke a public key at once; assertions it signs and tokens it minted stop working too."""
    return _revoke_credential(
        public_key,
        actor=actor,
        action="tokens.m2m_app.public_key_revoked",
        already="This key is already revoked.",
        extra=lambda key: {"kid": key.kid, "alg": key.algorithm},
        via=via,
    )


# --- governance adapter -----------------------------------------------------------------------


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


# --- federated identities (workload identity federation, tokens.federation) ----------------------
