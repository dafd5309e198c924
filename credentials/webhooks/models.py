"""Webhook endpoints (with their encrypted signing secret) and the delivery outbox."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import TimestampedModel, organization_field


class EventType(models.TextChoices):
    """The lifecycle events an endpoint can subscribe to (sent as `credential.<value>`)."""

    CREATED = "created", _("Created (or its first secret issued)")
    ROTATED = "rotated", _("Rotated (new secret or key)")
    REVOKED = "revoked", _("Revoked (the credential, a secret or a key)")
    EXPIRING = "expiring", _("Expiring soon")
    APPROVED = "approved", _("Request approved")
    DENIED = "denied", _("Request denied")
    ORPHANED = "orphaned", _("Owner left the organisation")
    SUSPENDED = "suspended", _("Suspended")
    LEAKED = "leaked", _("Reported leaked")
    POLICY_CHANGED = "policy_changed", _("Runtime policy changed (IP allowlist, rate limit)")
    AGAINST_POLICY = "against_policy", _("Against a changed policy (still works)")


#: The `type` of the test event ("send test event"); not subscribable, always delivered.
PING_EVENT = "webhook.ping"


class WebhookEndpoint(TimestampedModel):
    """An organisation's HTTPS receiver and the events it wants, signed with its own secret.

    The secret must be usable to sign, so it cannot be a one-way digest like API keys:
    it is stored encrypted (Fernet, see credentials.webhooks.signing) and shown once.
    """

    organization = organization_field("webhook_endpoints")
    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    event_types = models.JSONField(
        _("events"), default=list, help_text=_("Event names without the `credential.` prefix.")
    )
    active = models.BooleanField(_("active"), default=True)
    secret_hint = models.CharField(
        _("secret starts with"), max_length=16, help_text=_("The public start of the current secret.")
    )
    secret_ciphertext = models.BinaryField(_("encrypted secret"), editable=False)
    previous_secret_ciphertext = models.BinaryField(
        _("encrypted previous secret"), null=True, blank=True, editable=False
    )
    previous_secret_expires_at = models.DateTimeField(_("previous secret signs until"), null=True, blank=True)
    secret_rotated_at = models.DateTimeField(_("secret rotated"), null=True, blank=True)
    created_by = models.ForeignKey(
        "portal.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "active"], name="webhook_endpoint_org_active")]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event: str) -> bool:
        """Return whether this endpoint wants `event` (a bare name such as "rotated")."""
        return self.active and event in (self.event_types or [])


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Pending")  # not tried yet, or retry requested
    FAILED = "failed", _("Failed, will retry")
    SUCCEEDED = "succeeded", _("Delivered")
    DEAD = "dead", _("Gave up")


#: States the sender picks up when `next_attempt_at` has come.
DUE_STATES = (DeliveryState.PENDING, DeliveryState.FAILED)


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row, written in the transaction of the change."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, editable=False)
    event_type = models.CharField(_("event"), max_length=40)
    payload = models.JSONField(_("payload"))
    state = models.CharField(
        _("state"), max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True, default=timezone.now)
    #: While a sender holds the row (claimed, its attempt under way), until when: a person's retry
    #: waits for the outcome instead of handing the row to a second sender.
    leased_until = models.DateTimeField(_("being sent until"), null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last response status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    response_excerpt = models.CharField(_("response excerpt"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sender's query: due rows, oldest first; the partial index stays small.
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(state__in=DUE_STATES)
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once_per_event"),
            models.CheckConstraint(
                condition=Q(state__in=DeliveryState.values), name="webhook_delivery_state_valid"
            ),
            models.CheckConstraint(
                condition=~Q(state__in=DUE_STATES) | Q(next_attempt_at__isnull=False),
                name="webhook_delivery_due_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id}"

    @property
    def retryable(self) -> bool:
        """Return whether a person may ask for another attempt now (not while a sender is at it)."""
        return self.state in (DeliveryState.FAILED, DeliveryState.DEAD) and not self.in_flight

    @property
    def in_flight(self) -> bool:
        """Return whether a sender holds the row now (claimed, its outcome not recorded yet)."""
        return self.leased_until is not None and self.leased_until > timezone.now()


class DeliveryWorkerHeartbeat(models.Model):
    """When a `deliver_webhooks` runner last made a pass, so the dashboard can tell nobody sends.

    One row per runner name (host and process); the cache is not used because without Redis it
    is per process, and the web servers could never see the runner's heartbeat.
    """

    worker = models.CharField(_("worker"), max_length=200, primary_key=True)
    seen_at = models.DateTimeField(_("last pass"), db_index=True)

    class Meta:
        verbose_name = _("webhook delivery worker")
        verbose_name_plural = _("webhook delivery workers")

    def __str__(self) -> str:
        return self.worker
