"""The webhook REST API refuses like the credential APIs: a field it cannot change is a 400 on that
field (never a 200 that changes nothing), and a state refusal is `409 {"detail", "code"}`."""

from __future__ import annotations

import pytest

from credentials.webhooks.delivery import Outcome, deliveries_claim, delivery_record
from credentials.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from credentials.webhooks.services import MAX_ENDPOINTS_PER_ORGANIZATION, webhook_endpoint_ping

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/webhooks/"


@pytest.mark.parametrize("url", ["https://new.example.com/hook", 42, ["x"], None])
def test_a_url_change_is_refused_on_its_field_not_ignored(owner_client, make_endpoint, url):
    """The URL stays (add a new endpoint instead): a PATCH that sends another one is refused."""
    endpoint, _ = make_endpoint()
    response = owner_client.patch(f"{BASE}{endpoint.pk}/", {"url": url, "active": False}, "application/json")
    assert response.status_code == 400 and "url" in response.json(), (response.status_code, response.json())
    unchanged = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (unchanged.url, unchanged.active) == (endpoint.url, True)


def test_what_was_read_can_be_sent_back_with_one_change(owner_client, make_endpoint):
    endpoint, _ = make_endpoint()
    shown = owner_client.get(f"{BASE}{endpoint.pk}/").json()
    response = owner_client.patch(
        f"{BASE}{endpoint.pk}/", {**shown, "description": "renamed"}, "application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["description"] == "renamed"


def test_a_test_event_for_a_disabled_endpoint_is_a_409_with_a_code(owner_client, make_endpoint):
    endpoint, _ = make_endpoint()
    owner_client.patch(f"{BASE}{endpoint.pk}/", {"active": False}, "application/json")
    response = owner_client.post(f"{BASE}{endpoint.pk}/ping/")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "inactive" and body["detail"], body


def test_an_endpoint_past_the_limit_is_a_409_with_a_code(owner_client, make_endpoint, receiver):
    for n in range(MAX_ENDPOINTS_PER_ORGANIZATION):
        make_endpoint(url=f"{receiver.url}/{n}")
    response = owner_client.post(
        BASE, {"url": f"{receiver.url}/one-more", "event_types": ["created"]}, "application/json"
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "limit" and body["detail"], body
    assert WebhookEndpoint.objects.count() == MAX_ENDPOINTS_PER_ORGANIZATION


def test_a_retry_of_a_delivery_that_has_not_failed_is_a_409_with_its_code(machine, owner, make_endpoint):
    """The retry's 409 was always `conflict`, whatever the service said (ping's names its code)."""
    endpoint, _ = make_endpoint()
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)  # pending: not failed yet
    response = machine.post(f"{BASE}{endpoint.pk}/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "not_retryable" and body["detail"], body


def test_a_retry_of_a_delivery_being_sent_is_a_409_in_flight(machine, owner, make_endpoint):
    """`in_flight` tells a script to wait for the attempt's outcome and ask again, unlike `not_retryable`."""
    endpoint, _ = make_endpoint()
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED, attempts=1)
    (claimed,) = deliveries_claim(batch_size=1)  # a sender is POSTing it now
    response = machine.post(f"{BASE}{endpoint.pk}/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 409
    assert response.json()["code"] == "in_flight", response.json()

    delivery_record(delivery=claimed, outcome=Outcome(None, "Timed out"))
    assert machine.post(f"{BASE}{endpoint.pk}/deliveries/{delivery.pk}/retry/").status_code == 202
