"""Races: an endpoint deleted by a concurrent request (a double click) is a 404, never a 500; a
person's retry of a delivery a sender is sending waits for its outcome (one sender per row)."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse

from credentials.api_keys.services import api_key_revoke
from credentials.webhooks import api as webhooks_api
from credentials.webhooks import events
from credentials.webhooks import views as webhooks_views
from credentials.webhooks.delivery import Outcome, deliveries_claim, delivery_record
from credentials.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from credentials.webhooks.services import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_ping,
)
from tests.factories import ScopeFactory, make_api_key

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/webhooks/"


def _deleted_meanwhile_api(monkeypatch):
    """The endpoint is found, then another request (a double click) deletes it before the service runs."""
    real = webhooks_api.WebhookEndpointViewSet.get_object

    def get_object(self):
        endpoint = real(self)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
        return endpoint

    monkeypatch.setattr(webhooks_api.WebhookEndpointViewSet, "get_object", get_object)


@pytest.mark.parametrize(
    ("method", "suffix", "data"),
    [
        ("delete", "", None),
        ("patch", "", {"description": "x"}),
        ("post", "rotate-secret/", {"overlap_hours": 0}),
        ("post", "ping/", None),
    ],
)
def test_rest_change_of_an_endpoint_deleted_meanwhile_is_not_a_500(
    monkeypatch, organization, admin_user, make_endpoint, method, suffix, data
):
    ScopeFactory(name="webhooks:manage")
    _row, key = make_api_key(organization, admin_user, name="automation", scopes=["webhooks:manage"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", raise_request_exception=False)
    endpoint, _ = make_endpoint()
    _deleted_meanwhile_api(monkeypatch)
    kwargs = {"content_type": "application/json"} if data is not None else {}
    response = getattr(client, method)(f"{BASE}{endpoint.pk}/{suffix}", data, **kwargs)
    assert response.status_code in (204, 404), (response.status_code, response.content[:300])


def test_dashboard_double_delete_is_not_a_500(monkeypatch, owner, make_endpoint):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    endpoint, _ = make_endpoint()
    real = webhooks_views._endpoint_or_404

    def found_then_deleted(request, endpoint_id):
        found = real(request, endpoint_id)
        WebhookEndpoint.objects.filter(pk=found.pk).delete()  # the first click's request
        return found

    monkeypatch.setattr(webhooks_views, "_endpoint_or_404", found_then_deleted)
    response = client.post(
        reverse("org-webhook-delete", kwargs={"org_slug": "acme", "endpoint_id": endpoint.pk})
    )
    assert response.status_code in (302, 404), response.status_code


def test_a_retry_waits_for_the_attempt_a_sender_is_making(owner, make_endpoint, client):
    endpoint, _ = make_endpoint()
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED, attempts=1)
    (claimed,) = deliveries_claim(batch_size=1)  # sender A is now POSTing it (lease set)
    # A person clicks "Retry now" meanwhile: refused, so sender B cannot pick the row up too.
    with pytest.raises(ValidationError) as refused:
        webhook_delivery_retry(delivery=claimed, actor=owner)
    assert refused.value.code == "in_flight"
    assert deliveries_claim(batch_size=1) == []
    # The dashboard shows it as being sent, without the button.
    client.force_login(owner)
    page = client.get(reverse("org-webhook-detail", kwargs={"org_slug": "acme", "endpoint_id": endpoint.pk}))
    assert b"Being sent now" in page.content and b"Retry now" not in page.content

    # Once A has recorded its outcome, the retry is the person's to ask for.
    delivery_record(delivery=claimed, outcome=Outcome(None, "Timed out"))
    retried = webhook_delivery_retry(delivery=claimed, actor=owner)
    assert retried.state == DeliveryState.PENDING and not retried.in_flight
    assert [d.pk for d in deliveries_claim(batch_size=1)] == [delivery.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_endpoint_deleted_meanwhile_does_not_undo_a_revocation(
    require_postgres, organization, owner, scopes, monkeypatch
):
    """A person deletes a webhook endpoint while a key is being revoked (or a leak report revokes
    one): the outbox row referenced it, the foreign key failed at commit and the revocation rolled
    back. The endpoints an event goes to are now held until the change commits; the deletion waits."""
    endpoint, _secret = webhook_endpoint_create(
        organization=organization,
        url="https://hooks.example.com/portal",
        event_types=["revoked"],
        actor=owner,
    )
    key, _plaintext = make_api_key(organization, owner, name="billing export")
    real = events._subscribed
    deleting = []

    def subscribed_then_deleted(organization_id, event):
        found = real(organization_id, event)
        # Another request deletes the endpoint between this read and the outbox insert. Before the
        # fix it committed at once; now it waits for this transaction (the join gives up after 1 s).
        deleting.append(threading.Thread(target=_delete_in_own_connection, args=(endpoint, owner)))
        deleting[0].start()
        deleting[0].join(timeout=1)
        return found

    monkeypatch.setattr(events, "_subscribed", subscribed_then_deleted)
    api_key_revoke(api_key=key, actor=owner, reason="no longer needed")
    deleting[0].join(timeout=10)
    key.refresh_from_db()
    assert key.status == "revoked"
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()  # the deletion went through after
    assert not WebhookDelivery.objects.exists()  # and took the event queued for it


def _delete_in_own_connection(endpoint, actor):
    try:
        webhook_endpoint_delete(endpoint=endpoint, actor=actor)
    finally:
        connection.close()
