"""Lifecycle events: the one table from audit actions to webhook events, and the outbox writer.

Every credential change already writes exactly one audit event in its transaction; the
listener registered in CredentialsConfig.ready turns the ones listed in AUDIT_EVENTS into
outbox rows in that same transaction, so a rolled-back change sends nothing. The expiring
notice has no audit event and calls `webhook_event_emit` itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from credentials.governance.models import CredentialStatus
from credentials.governance.registry import all_kinds, credential_path, kind_of, webhook_event_of
from credentials.webhooks.models import PING_EVENT, EventType, WebhookDelivery, WebhookEndpoint
from portal.models import AuditEvent, Organization, User

#: audit action -> webhook event, for the request decisions every kind shares.
_SHARED_EVENTS: dict[str, str] = {
    "credentials.request.approved": EventType.APPROVED,
    "credentials.request.denied": EventType.DENIED,
}


class _AuditEvents(Mapping[str, str]):
    """audit action -> webhook event: the shared table, then the events each registered kind declares.

    Each kind lists its own audit verbs that are events (`GovernedKind.webhook_events`, in its
    kind file); this reads them when asked, so no kind is named here.
    """

    def __getitem__(self, action: str) -> str:
        event = _SHARED_EVENTS.get(action) or webhook_event_of(action)
        if event is None:
            raise KeyError(action)
        return event

    def __iter__(self) -> Iterator[str]:
        yield from _SHARED_EVENTS
        for kind in all_kinds():
            yield from (f"{kind.audit_prefix}.{verb}" for verb in kind.webhook_events)

    def __len__(self) -> int:
        return sum(1 for _ in self)


AUDIT_EVENTS: Mapping[str, str] = _AuditEvents()

# A verb no kind lists sends nothing: staff changing cross-organisation marks in the admin
# (portal configuration, in the audit log), `restored`, `owner_reassigned`, `recertified` and
# `scopes_changed` are deliberately not events.

#: Audit extra keys copied into `data` (public identifiers and codes only; never free text
#: that a person typed, never a secret), by the audit actions they are read from.
_EXTRA_KEYS = {
    "successor_key_id": "successor_id",
    "old_key_expires_at": "previous_secret_expires_at",
    "request_id": "request_id",
    "kid": "kid",  # private_key_jwt: the public key added or revoked (its RFC 7638 thumbprint)
    # policy_changed: {"from": …, "to": …} of the CIDR list and of the {"requests", "per_seconds"} limit
    "allowed_ips": "allowed_ips",
    "rate_limit": "rate_limit",
    "policy": "policy",  # against_policy: the policy settings that flagged it
}
#: Read only from the request decisions: a leak report's audit `type` is the reporter's token type.
_REQUEST_EXTRA_KEYS = {"type": "request_type"}


#: A leak report's audit extra keys copied into `data.leak`: what was done, where the secret was
#: found (a public url) and in what (the scanner's `source`), never the secret or its hint.
_LEAK_KEYS = {"action": "action", "url": "found_at", "source": "source", "reporter": "reporter"}


def event_type_name(event: str) -> str:
    """Return the `type` sent on the wire for a bare event name ("rotated" -> "credential.rotated")."""
    return event if event == PING_EVENT else f"credential.{event}"


def _credential_of(target: models.Model | None) -> models.Model | None:
    """Return the governed credential an audit target is, or belongs to (a client secret, a key)."""
    for candidate in (target, getattr(target, "application", None)):
        if candidate is None:
            continue
        try:
            kind_of(candidate)
        except LookupError:
            continue
        return candidate
    return None


def on_audit_event(event: AuditEvent, target: models.Model | None) -> None:
    """Write outbox rows for an audit event that maps to a webhook event (the audit listener)."""
    name = AUDIT_EVENTS.get(event.action)
    if name is None or event.organization_id is None:
        return
    credential = _credential_of(target)
    if credential is None:
        return
    if event.action.endswith(".created") and credential.status == CredentialStatus.PENDING:
        # A credential waiting for approval holds no secret yet; `created` is sent when it
        # gets one (`.secret_issued`), and the request's decision is `approved`/`denied`.
        return
    activated = bool((event.extra or {}).get("activated"))
    if activated:
        # A credential's first secret or key after its approval (an approved private_key_jwt
        # application's first public key), like `.secret_issued`: it is created, not rotated.
        name = EventType.CREATED
    keys = dict(_EXTRA_KEYS)
    decided = event.action.startswith("credentials.request.") or event.action.endswith(".secret_issued")
    if decided or activated:
        keys.update(_REQUEST_EXTRA_KEYS)
    if name == EventType.SUSPENDED:
        keys["reason"] = "reason"  # a SuspensionReason code
    extra = {new: event.extra[old] for old, new in keys.items() if old in (event.extra or {})}
    if name == EventType.LEAKED:
        extra["leak"] = {
            new: event.extra[old] for old, new in _LEAK_KEYS.items() if old in (event.extra or {})
        }
    webhook_event_emit(
        event=name,
        credential=credential,
        actor=event.actor,
        extra={"audit_action": event.action, **extra},
        occurred_at=event.occurred_at,
    )


def _subscribed(organization_id: int, event: str) -> list[WebhookEndpoint]:
    """Return the organisation's active endpoints subscribed to `event`, held until the caller commits.

    The outbox rows reference them: an endpoint deleted (and committed) between this read and the
    caller's commit failed the foreign key at commit and rolled back the caller's whole change, a
    revocation included. On PostgreSQL the rows are read `FOR KEY SHARE`: a deletion waits for
    the caller (and its cascade then removes the new rows), while other changes that emit events,
    the sender's and the dashboard's updates of the endpoint do not wait (they take no key lock).
    """
    # Few endpoints per organisation: filter the JSON list in Python, the same on SQLite and PostgreSQL.
    endpoints = (
        WebhookEndpoint.objects.filter(organization_id=organization_id, active=True)
        .only("pk", "event_types", "active")
        .order_by("pk")
    )
    if connection.vendor == "postgresql":
        sql, params = endpoints.query.sql_with_params()
        endpoints = WebhookEndpoint.objects.raw(f"{sql} FOR KEY SHARE", params)
    return [e for e in endpoints if e.subscribes_to(event)]


def credential_summary(credential: models.Model) -> dict[str, Any]:
    """Return the public description of a credential sent in payloads (never a secret)."""
    kind = kind_of(credential)
    owner = credential.owner
    return {
        "kind": kind.key,
        "id": str(getattr(credential, kind.ref_attr)),
        "name": credential.name,
        "owner": owner.email if owner is not None else None,
        "status": credential.status,
        "dashboard_url": settings.PORTAL_BASE_URL + credential_path(credential),
    }


def webhook_event_emit(
    *,
    event: str,
    credential: models.Model,
    actor: User | None,
    extra: dict[str, Any] | None = None,
    occurred_at=None,
) -> list[WebhookDelivery]:
    """Queue one event about `credential` for every active endpoint of its organisation subscribed to it.

    Runs in the caller's transaction. Return the outbox rows (none when nobody subscribed).
    """
    endpoints = _subscribed(credential.organization_id, event)
    if not endpoints:
        return []
    # Describe the credential as it is now in this transaction: a caller's instance may be one
    # a nested service changed through its own locked copy (a leak report's revocation).
    credential = type(credential).objects.select_related("organization", "owner").get(pk=credential.pk)
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": event_type_name(event),
        "created_at": (occurred_at or timezone.now()).isoformat(),
        "organization": credential.organization.slug,
        "data": {
            "credential": credential_summary(credential),
            "actor": actor.email if actor is not None else None,
            **(extra or {}),
        },
    }
    return WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=e, event_id=event_id, event_type=payload["type"], payload=payload)
            for e in endpoints
        ]
    )


def ping_payload(*, endpoint: WebhookEndpoint, organization: Organization, actor: User | None) -> dict:
    """Return the payload of a test event."""
    return {
        "id": str(uuid.uuid4()),
        "type": PING_EVENT,
        "created_at": timezone.now().isoformat(),
        "organization": organization.slug,
        "data": {"endpoint": endpoint.url, "actor": actor.email if actor is not None else None},
    }
