"""Webhook reads, each starting from the organisation."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from credentials.webhooks.models import (
    DeliveryState,
    DeliveryWorkerHeartbeat,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.models import Organization


def webhook_endpoints_for(organization: Organization) -> QuerySet[WebhookEndpoint]:
    """Return the organisation's endpoints with their delivery counts (one query)."""
    return (
        WebhookEndpoint.objects.filter(organization=organization)
        .defer("secret_ciphertext", "previous_secret_ciphertext")
        .annotate(
            failing_count=Count(
                "deliveries", filter=Q(deliveries__state__in=[DeliveryState.FAILED, DeliveryState.DEAD])
            ),
            pending_count=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING)),
            delivered_count=Count("deliveries", filter=Q(deliveries__state=DeliveryState.SUCCEEDED)),
        )
        .order_by("created_at", "id")
    )


def webhook_endpoint_get(organization: Organization, endpoint_id: int) -> WebhookEndpoint:
    """Return one of the organisation's endpoints or raise WebhookEndpoint.DoesNotExist."""
    return (
        WebhookEndpoint.objects.filter(organization=organization)
        .defer("secret_ciphertext", "previous_secret_ciphertext")
        .select_related("organization")
        .get(pk=endpoint_id)
    )


def webhook_deliveries_for(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Return an endpoint's deliveries, newest first, without their payloads."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .defer("payload", "response_excerpt")
        .order_by("-created_at", "-id")
    )


def webhook_delivery_get(organization: Organization, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Return one delivery of one of the organisation's endpoints or raise WebhookDelivery.DoesNotExist."""
    delivery = WebhookDelivery.objects.select_related("endpoint__organization").get(
        pk=delivery_id, endpoint__organization=organization
    )
    # Compared here, not in the query: a foreign-key lookup with an id beyond the column's range
    # raises OverflowError on SQLite, where the primary-key lookup simply matches nothing.
    if delivery.endpoint_id != endpoint_id:
        raise WebhookDelivery.DoesNotExist
    return delivery


def failing_webhook_endpoint_count(
    organization: Organization, *, within: timedelta = timedelta(days=7)
) -> int:
    """Return how many active endpoints have a delivery that failed or was given up recently (one query)."""
    return (
        WebhookEndpoint.objects.filter(
            organization=organization,
            active=True,
            deliveries__state__in=[DeliveryState.FAILED, DeliveryState.DEAD],
            deliveries__last_attempt_at__gte=timezone.now() - within,
        )
        .distinct()
        .count()
    )


#: A runner passes every few seconds (`--loop`) or every minute (cron `--once`); five minutes
#: of silence means nothing is sending.
DELIVERY_WORKER_SILENCE = timedelta(minutes=5)


def delivery_worker_seen_recently(*, within: timedelta = DELIVERY_WORKER_SILENCE) -> bool:
    """Return whether any `deliver_webhooks` runner has made a pass within `within` (one query)."""
    return DeliveryWorkerHeartbeat.objects.filter(seen_at__gte=timezone.now() - within).exists()
