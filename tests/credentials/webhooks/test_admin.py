"""Staff see webhooks read-only in the admin: no deletion that bypasses the audited service."""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.webhooks.models import WebhookEndpoint
from credentials.webhooks.services import webhook_endpoint_ping
from portal.models import AuditEvent
from tests.factories import UserFactory, enrol_totp

pytestmark = pytest.mark.django_db


def test_staff_cannot_delete_an_endpoint_or_delivery_unaudited_in_the_admin(client, owner, make_endpoint):
    endpoint, _ = make_endpoint()
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)
    client.force_login(staff)
    response = client.post(
        reverse("admin:credentials_webhookendpoint_delete", args=[endpoint.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not AuditEvent.objects.filter(action="credentials.webhook.deleted").exists()
    assert (
        client.get(reverse("admin:credentials_webhookdelivery_delete", args=[delivery.pk])).status_code == 403
    )
