"""A retry on a disabled endpoint is refused, like its test event: the sender would never send it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from credentials.webhooks.models import DeliveryState, WebhookDelivery
from credentials.webhooks.services import webhook_delivery_retry, webhook_endpoint_update
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/webhooks/"


@pytest.fixture
def dead_on_disabled(make_endpoint, owner) -> WebhookDelivery:
    """Return a given-up delivery whose endpoint was disabled since."""
    endpoint, _secret = make_endpoint()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="credential.created", payload={}, state=DeliveryState.DEAD, attempts=4
    )
    webhook_endpoint_update(
        endpoint=endpoint, actor=owner, event_types=endpoint.event_types, description="", active=False
    )
    return delivery


def _unchanged(delivery: WebhookDelivery) -> None:
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DEAD
    assert not AuditEvent.objects.filter(action="credentials.webhook.delivery_retried").exists()


def test_the_service_refuses_it(dead_on_disabled, owner):
    with pytest.raises(ValidationError) as refused:
        webhook_delivery_retry(delivery=dead_on_disabled, actor=owner)
    assert refused.value.code == "inactive"
    assert refused.value.messages == ["Enable the endpoint before retrying a delivery."]
    _unchanged(dead_on_disabled)


def test_the_page_offers_no_retry_and_refuses_one_posted(owner_client, owner, dead_on_disabled):
    endpoint = dead_on_disabled.endpoint
    detail = reverse("org-webhook-detail", kwargs={"org_slug": "acme", "endpoint_id": endpoint.pk})
    retry = reverse(
        "org-webhook-delivery-retry",
        kwargs={"org_slug": "acme", "endpoint_id": endpoint.pk, "delivery_id": dead_on_disabled.pk},
    )
    page = owner_client.get(detail).content.decode()
    assert retry not in page and "Retry now" not in page
    assert "Enable the endpoint to retry" in page

    response = owner_client.post(retry, follow=True)

    text = " ".join(str(m) for m in response.context["messages"])
    assert text == "Enable the endpoint before retrying a delivery.", text
    _unchanged(dead_on_disabled)

    webhook_endpoint_update(
        endpoint=endpoint, actor=owner, event_types=endpoint.event_types, description="", active=True
    )
    assert retry in owner_client.get(detail).content.decode()  # enabled again: offered again


def test_the_rest_api_answers_409_inactive(machine, dead_on_disabled):
    endpoint = dead_on_disabled.endpoint
    response = machine.post(f"{BASE}{endpoint.pk}/deliveries/{dead_on_disabled.pk}/retry/")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Enable the endpoint before retrying a delivery.",
        "code": "inactive",
    }
    _unchanged(dead_on_disabled)
