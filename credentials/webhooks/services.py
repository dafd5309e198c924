"""Webhook writes: endpoints (create, change, rotate the secret, delete), test events and retries.

Each service is one transaction with one audit event (`credentials.webhook.*`). The secret is
returned once by create and rotate and is never put in an audit event, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from credentials.webhooks import signing
from credentials.webhooks.destinations import parse_url
from credentials.webhooks.events import ping_payload
from credentials.webhooks.models import (
    DUE_STATES,
    PING_EVENT,
    DeliveryState,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.models import Organization, User
from portal.services.audit import audit_log
from portal.services.encryption import ciphertext_reencrypt, reencrypted_audit

MAX_ENDPOINTS_PER_ORGANIZATION = 20
MAX_SECRET_OVERLAP_HOURS = 168
#: Test events waiting to be sent, per endpoint: more would only pile up rows in the outbox.
MAX_QUEUED_PINGS = 5


def _clean_events(event_types: Iterable[str]) -> list[str]:
    events = sorted(set(event_types))
    if not events:
        raise ValidationError({"event_types": "Choose at least one event."}, code="no_events")
    unknown = set(events) - set(EventType.values)
    if unknown:
        raise ValidationError({"event_types": "Unknown event."}, code="unknown_event")
    return events


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if len(url) > 500:
        raise ValidationError({"url": "Use a URL of at most 500 characters."}, code="too_long")
    try:
        parse_url(url)
    except ValidationError as exc:
        raise ValidationError({"url": exc.messages}, code=exc.code) from None
    return url


def _audit(verb: str, endpoint: WebhookEndpoint, actor: User | None, extra: dict | None = None) -> None:
    audit_log(
        action=f"credentials.webhook.{verb}",
        actor=actor,
        organization=endpoint.organization,
        target=endpoint,
        target_label=endpoint.url[:255],
        extra=extra,
    )


def _locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Return the endpoint's row afresh, locked; 404 when a concurrent request deleted it meanwhile."""
    locked = (
        WebhookEndpoint.objects.select_for_update(of=("self",))
        .select_related("organization")
        .filter(pk=endpoint.pk)
        .first()
    )
    if locked is None:
        raise Http404("No such webhook endpoint.")
    return locked


def _readable(ciphertext: bytes | memoryview | None) -> bool:
    """Return whether a stored secret decrypts under the current encryption keys."""
    try:
        signing.decrypt_secret(ciphertext)
    except InvalidToken:
        return False
    return True


@transaction.atomic
def webhook_endpoint_create(
    *,
    organization: Organization,
    url: str,
    event_types: Iterable[str],
    actor: User | None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; return it and its signing secret, which is shown this once."""
    url = _clean_url(url)
    events = _clean_events(event_types)
    # Lock the organisation row so two concurrent creations cannot both pass the limit.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    if WebhookEndpoint.objects.filter(organization=organization).count() >= MAX_ENDPOINTS_PER_ORGANIZATION:
        raise ValidationError(
            f"An organisation can have at most {MAX_ENDPOINTS_PER_ORGANIZATION} webhook endpoints.",
            code="limit",
        )
    secret = signing.generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        description=(description or "").strip()[:200],
        event_types=events,
        secret_hint=signing.secret_hint(secret),
        secret_ciphertext=signing.encrypt_secret(secret),
        created_by=actor if isinstance(actor, User) else None,
    )
    _audit("created", endpoint, actor, {"url": url, "events": events})
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: User | None,
    event_types: Iterable[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's events, description or active flag (the URL stays: add a new endpoint)."""
    endpoint = _locked(endpoint)
    changes = {}
    if event_types is not None:
        events = _clean_events(event_types)
        if events != endpoint.event_types:
            changes["events"] = {"from": endpoint.event_types, "to": events}
            endpoint.event_types = events
    if description is not None and description.strip()[:200] != endpoint.description:
        changes["description"] = {"from": endpoint.description, "to": description.strip()[:200]}
        endpoint.description = description.strip()[:200]
    if active is not None and bool(active) != endpoint.active:
        changes["active"] = {"from": endpoint.active, "to": bool(active)}
        endpoint.active = bool(active)
    if not changes:
        return endpoint
    endpoint.save(update_fields=["event_types", "description", "active", "updated_at"])
    _audit("updated", endpoint, actor, changes)
    return endpoint


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: User | None, overlap_hours: int = 24
) -> tuple[WebhookEndpoint, str]:
    """Give the endpoint a new secret; the old one also signs until the overlap ends.

    During the overlap each delivery carries two `v1=` signatures, so a receiver can switch
    to the new secret at any moment. Overlap 0 stops the old secret at once.
    """
    if not 0 <= overlap_hours <= MAX_SECRET_OVERLAP_HOURS:
        raise ValidationError(
            {"overlap_hours": f"Choose between 0 and {MAX_SECRET_OVERLAP_HOURS} hours."}, code="overlap"
        )
    endpoint = _locked(endpoint)
    now = timezone.now()
    secret = signing.generate_secret()
    # A secret that no longer decrypts (the encryption key changed without re-encrypting, the
    # case the sender's error asks to rotate for) signs nothing: it is dropped, not kept to overlap.
    if overlap_hours and _readable(endpoint.secret_ciphertext):
        endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
        endpoint.previous_secret_expires_at = now + timedelta(hours=overlap_hours)
    else:
        endpoint.previous_secret_ciphertext = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret_ciphertext = signing.encrypt_secret(secret)
    endpoint.secret_hint = signing.secret_hint(secret)
    endpoint.secret_rotated_at = now
    endpoint.save(
        update_fields=[
            "previous_secret_ciphertext",
            "previous_secret_expires_at",
            "secret_ciphertext",
            "secret_hint",
            "secret_rotated_at",
            "updated_at",
        ]
    )
    _audit("secret_rotated", endpoint, actor, {"overlap_hours": overlap_hours})
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: User | None) -> None:
    """Delete an endpoint and its delivery history."""
    endpoint = _locked(endpoint)
    _audit("deleted", endpoint, actor, {"url": endpoint.url, "events": endpoint.event_types})
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_ping(*, endpoint: WebhookEndpoint, actor: User | None) -> WebhookDelivery:
    """Queue a `webhook.ping` test event for an active endpoint; the sender delivers it like any event."""
    endpoint = _locked(endpoint)
    if not endpoint.active:
        raise ValidationError("Enable the endpoint before sending a test event.", code="inactive")
    queued = endpoint.deliveries.filter(event_type=PING_EVENT, state__in=DUE_STATES).count()
    if queued >= MAX_QUEUED_PINGS:
        raise ValidationError(
            f"{queued} test events are already waiting to be sent; wait for them first.", code="queued"
        )
    payload = ping_payload(endpoint=endpoint, organization=endpoint.organization, actor=actor)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id=payload["id"], event_type=PING_EVENT, payload=payload
    )
    _audit("tested", endpoint, actor, {"event_id": payload["id"]})
    return delivery


@transaction.atomic
def webhook_delivery_retry(*, delivery: WebhookDelivery, actor: User | None) -> WebhookDelivery:
    """Send a failed or dead delivery again at the sender's next run (a dead one gets one more attempt).

    Only to an active endpoint: the sender skips a disabled one's deliveries, so a retry there
    would be recorded and never sent.
    """
    # The endpoint before the delivery, as its deletion and its test events lock them; locked,
    # so it cannot be disabled between this check and the commit.
    endpoint = _locked(delivery.endpoint)
    if not endpoint.active:
        raise ValidationError("Enable the endpoint before retrying a delivery.", code="inactive")
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .filter(pk=delivery.pk, endpoint=endpoint)
        .first()
    )
    if delivery is None:  # deleted meanwhile
        raise Http404("No such delivery.")
    delivery.endpoint = endpoint
    if delivery.in_flight:
        raise ValidationError(
            "A sender is attempting this delivery now; wait for its outcome.", code="in_flight"
        )
    if not delivery.retryable:
        raise ValidationError("Only a failed or abandoned delivery can be retried.", code="not_retryable")
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["state", "next_attempt_at"])
    _audit(
        "delivery_retried",
        delivery.endpoint,
        actor,
        {"event_id": str(delivery.event_id), "event": delivery.event_type, "attempts": delivery.attempts},
    )
    return delivery


@transaction.atomic
def webhook_secrets_reencrypt(*, old_encryption_keys: Iterable[str], actor: User | None) -> int:
    """Re-encrypt every endpoint secret under the current encryption key; return how many endpoints changed.

    Secrets already under the current key are left alone (safe to re-run). All or nothing: a
    secret that neither the current key nor any of `old_encryption_keys` opens changes
    nothing. Run through `portal.services.encryption.secrets_reencrypt`.
    """
    changed = []
    for endpoint in WebhookEndpoint.objects.select_for_update().order_by("pk"):
        fields = {}
        for field in ("secret_ciphertext", "previous_secret_ciphertext"):
            ciphertext = getattr(endpoint, field)
            if not ciphertext:
                continue
            token = ciphertext_reencrypt(
                signing.reencrypt,
                ciphertext,
                previous=old_encryption_keys,
                what=f"The signing secret of webhook endpoint {endpoint.pk}",
            )
            if token is not None:
                fields[field] = token
        if fields:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**fields)
            changed.append(endpoint.pk)
    reencrypted_audit(
        action="credentials.webhook.secrets_reencrypted",
        actor=actor,
        changed=changed,
        unit="webhook endpoint(s)",
        ids_key="endpoint_ids",
    )
    return len(changed)


@transaction.atomic
def webhook_deliveries_purge(*, older_than: timedelta, actor: User | None = None) -> int:
    """Delete delivered and given-up deliveries created more than `older_than` ago; return how many.

    Rows still due (pending, failed) are kept whatever their age: they are the outbox.
    """
    if older_than <= timedelta(0):
        raise ValidationError("Keep deliveries for a positive duration.", code="retention")
    cutoff = timezone.now() - older_than
    deleted, _ = WebhookDelivery.objects.filter(
        state__in=[DeliveryState.SUCCEEDED, DeliveryState.DEAD], created_at__lt=cutoff
    ).delete()
    if deleted:
        audit_log(
            action="credentials.webhook.deliveries_purged",
            actor=actor,
            organization=None,
            target_label=f"{deleted} webhook deliveries",
            extra={"created_before": cutoff.isoformat(), "count": deleted},
        )
    return deleted
