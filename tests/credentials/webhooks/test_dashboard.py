"""The Webhooks pages: managers add endpoints, see the secret once, test, watch deliveries, retry."""

from __future__ import annotations

import io
import re
from urllib.parse import urljoin

import pytest
from django.urls import reverse

from credentials.webhooks.models import WebhookDelivery, WebhookEndpoint
from credentials.webhooks.services import webhook_endpoint_ping
from credentials.webhooks.views import PAGE_SIZE
from portal.models import AuditEvent
from tests.credentials.webhooks.conftest import deliver

pytestmark = pytest.mark.django_db

SECRET_RE = re.compile(r"whsec_[0-9A-Za-z]{40}")
SUBMISSION_RE = re.compile(r'name="submission" value="([^"]+)"')


def _url(name: str, **kwargs) -> str:
    return reverse(name, kwargs={"org_slug": "acme", **kwargs})


def _create(client, receiver, events=("created", "revoked")):
    form = client.get(_url("org-webhook-create"))
    token = SUBMISSION_RE.search(form.content.decode()).group(1)
    data = {"url": receiver.url, "description": "SIEM", "event_types": list(events), "submission": token}
    return client.post(_url("org-webhook-create"), data), data


def test_the_nav_shows_webhooks_to_managers_only(owner_client, member_client):
    assert _url("org-webhooks").encode() in owner_client.get(_url("org-home")).content
    assert _url("org-webhooks").encode() not in member_client.get(_url("org-home")).content


def test_members_cannot_see_or_manage_webhooks(member_client, owner, make_endpoint):
    endpoint, _ = make_endpoint()
    assert member_client.get(_url("org-webhooks")).status_code == 403
    assert member_client.get(_url("org-webhook-detail", endpoint_id=endpoint.pk)).status_code == 403
    assert member_client.post(_url("org-webhook-ping", endpoint_id=endpoint.pk)).status_code == 403
    assert not WebhookDelivery.objects.exists()


def test_add_an_endpoint_and_see_its_secret_once(owner_client, receiver):
    response, data = _create(owner_client, receiver)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    secret = SECRET_RE.search(response.content.decode()).group(0)
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.description, endpoint.event_types) == (
        receiver.url,
        "SIEM",
        ["created", "revoked"],
    )
    assert endpoint.secret_hint == secret[:10]
    event = AuditEvent.objects.get(action="credentials.webhook.created")
    assert event.extra == {"url": receiver.url, "events": ["created", "revoked"]}
    # Reloading the reveal page (the same submission) shows no secret and creates nothing.
    again = owner_client.post(_url("org-webhook-create"), data, follow=True)
    assert secret not in again.content.decode() and WebhookEndpoint.objects.count() == 1
    assert b"already shown once" in again.content
    # Nowhere else: the list and the detail page show the hint only.
    for page in (_url("org-webhooks"), _url("org-webhook-detail", endpoint_id=endpoint.pk)):
        body = owner_client.get(page).content.decode()
        assert secret not in body and secret[10:] not in body
    detail = owner_client.get(_url("org-webhook-detail", endpoint_id=endpoint.pk)).content.decode()
    assert f"<code>{endpoint.secret_hint}…</code>" in detail


def test_the_form_refuses_bad_input_with_field_errors(settings, owner_client, receiver):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = False
    form = owner_client.get(_url("org-webhook-create")).content.decode()
    token = SUBMISSION_RE.search(form).group(1)
    for data, message in (
        ({"url": receiver.url, "event_types": ["created"]}, "HTTPS"),
        ({"url": "https://u:p@hooks.example.com/", "event_types": ["created"]}, "user name or password"),
        ({"url": "https://10.1.2.3/", "event_types": ["created"]}, "public address"),
        ({"url": "https://hooks.example.com/", "event_types": []}, "This field is required"),
        ({"url": "https://hooks.example.com/", "event_types": ["boom"]}, "Select a valid choice"),
    ):
        response = owner_client.post(_url("org-webhook-create"), {**data, "submission": token})
        assert response.status_code == 400
        assert message in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_send_a_test_event_and_see_the_delivery_listed(owner_client, receiver, make_endpoint):
    endpoint, secret = make_endpoint()
    response = owner_client.post(_url("org-webhook-ping", endpoint_id=endpoint.pk), follow=True)
    assert b"A test event was queued" in response.content
    receiver.statuses.append(500)
    deliver()
    page = owner_client.get(_url("org-webhook-detail", endpoint_id=endpoint.pk)).content.decode()
    assert "webhook.ping" in page and "Failed, will retry" in page and "<code>500</code>" in page
    delivery = WebhookDelivery.objects.get()
    retry_url = _url("org-webhook-delivery-retry", endpoint_id=endpoint.pk, delivery_id=delivery.pk)
    assert retry_url in page
    owner_client.post(retry_url)
    deliver()
    page = owner_client.get(_url("org-webhook-detail", endpoint_id=endpoint.pk)).content.decode()
    assert "Delivered" in page and "<code>200</code>" in page and retry_url not in page
    assert len(receiver.verified(secret)) == 2
    assert AuditEvent.objects.filter(action="credentials.webhook.delivery_retried").count() == 1
    # A delivered row cannot be retried.
    response = owner_client.post(retry_url, follow=True)
    assert b"Only a failed or abandoned delivery" in response.content


def test_edit_events_and_disable(owner_client, make_endpoint):
    endpoint, _ = make_endpoint(["created"])
    url = _url("org-webhook-edit", endpoint_id=endpoint.pk)
    response = owner_client.post(url, {"event_types": ["revoked", "leaked"], "description": "pager"})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.event_types, endpoint.description, endpoint.active) == (
        ["leaked", "revoked"],
        "pager",
        False,
    )
    event = AuditEvent.objects.get(action="credentials.webhook.updated")
    assert event.extra["active"] == {"from": True, "to": False}
    response = owner_client.post(url, {"event_types": []})
    assert response.status_code == 400 and b"This field is required" in response.content
    response = owner_client.post(_url("org-webhook-ping", endpoint_id=endpoint.pk), follow=True)
    assert b"Enable the endpoint" in response.content


def test_rotate_the_secret(owner_client, make_endpoint):
    endpoint, old_secret = make_endpoint()
    url = _url("org-webhook-rotate", endpoint_id=endpoint.pk)
    token = SUBMISSION_RE.search(owner_client.get(url).content.decode()).group(1)
    response = owner_client.post(url, {"overlap_hours": "24", "submission": token})
    new_secret = SECRET_RE.search(response.content.decode()).group(0)
    assert response["Cache-Control"].startswith("no-store")  # the back button cannot bring it back
    assert new_secret != old_secret and "each delivery carries two signatures" in response.content.decode()
    again = owner_client.post(url, {"overlap_hours": "24", "submission": token}, follow=True)
    assert new_secret not in again.content.decode()
    assert AuditEvent.objects.filter(action="credentials.webhook.secret_rotated").count() == 1
    assert owner_client.post(url, {"overlap_hours": "9999", "submission": "x"}).status_code == 400


def test_delete(owner_client, make_endpoint, owner):
    endpoint, _ = make_endpoint()
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    url = _url("org-webhook-delete", endpoint_id=endpoint.pk)
    assert owner_client.get(url).status_code == 200
    assert owner_client.post(url).status_code == 302
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="credentials.webhook.deleted").count() == 1


def test_secret_pages_need_a_fresh_sign_in(settings, owner_client, make_endpoint):
    endpoint, _ = make_endpoint()
    settings.PORTAL_STEP_UP_SECONDS = 0  # every proof of identity is now stale
    for name, kwargs in (
        ("org-webhook-create", {}),
        ("org-webhook-rotate", {"endpoint_id": endpoint.pk}),
        ("org-webhook-delete", {"endpoint_id": endpoint.pk}),
    ):
        response = owner_client.get(_url(name, **kwargs))
        assert response.status_code == 302 and "reauthenticate" in response["Location"], name
    response = owner_client.post(
        _url("org-webhook-edit", endpoint_id=endpoint.pk), {"event_types": ["leaked"]}
    )
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    endpoint.refresh_from_db()
    assert endpoint.event_types != ["leaked"]


def test_the_deliveries_page_queries_do_not_grow_with_rows(
    owner_client, owner, make_endpoint, django_assert_max_num_queries
):
    endpoint, _ = make_endpoint()
    for _ in range(30):
        delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(state="dead", next_attempt_at=None)
    url = _url("org-webhook-detail", endpoint_id=endpoint.pk)
    owner_client.get(url)
    with django_assert_max_num_queries(12):
        response = owner_client.get(url)
    assert response.content.decode().count('<td data-label="Event">') == 25  # one page
    assert b'rel="next"' in response.content
    with django_assert_max_num_queries(12):
        owner_client.get(_url("org-webhooks"))


def test_the_delivery_pager_works_after_a_refused_settings_form(owner_client, make_endpoint):
    # The refused form renders the page at …/edit/ (POST only): a relative pager link would answer 405 there.
    endpoint, _ = make_endpoint(["created"])
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint=endpoint, event_type="api_key.created", payload={})
        for _ in range(PAGE_SIZE + 1)
    )
    edit_url = _url("org-webhook-edit", endpoint_id=endpoint.pk)
    refused = owner_client.post(edit_url, {"description": "x"})  # no event chosen
    assert refused.status_code == 400
    pager = re.search(r'<a href="([^"]*)" rel="next"', refused.content.decode())
    assert pager, "the refused page shows the delivery pager"
    href = pager.group(1).replace("&amp;", "&")
    followed = owner_client.get(urljoin(f"http://testserver{edit_url}", href))
    assert followed.status_code == 200, (
        f"the pager's Older link ({href} from {edit_url}) answered {followed.status_code}"
    )
    assert followed.request["PATH_INFO"] == _url("org-webhook-detail", endpoint_id=endpoint.pk)
    assert 'rel="prev"' in followed.content.decode()  # page 2


def test_the_admin_shows_no_secret(client, owner, make_endpoint, receiver):
    from tests.factories import UserFactory, enrol_totp

    endpoint, secret = make_endpoint()
    delivery = webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)  # staff use the admin only with a second factor
    client.force_login(staff)
    for url in (
        reverse("admin:credentials_webhookendpoint_changelist"),
        reverse("admin:credentials_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:credentials_webhookdelivery_changelist"),
        reverse("admin:credentials_webhookdelivery_change", args=[delivery.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert secret not in body and secret[10:] not in body and "ciphertext" not in body
    assert client.get(reverse("admin:credentials_webhookendpoint_add")).status_code == 403


def test_the_organisation_page_warns_managers_of_failing_deliveries(
    owner_client, member_client, owner, receiver, make_endpoint
):
    endpoint, _ = make_endpoint()
    webhook_endpoint_ping(endpoint=endpoint, actor=owner)
    assert b"Webhook deliveries are failing" not in owner_client.get(_url("org-home")).content
    receiver.statuses.append(500)
    deliver()
    page = owner_client.get(_url("org-home")).content.decode()
    assert "Webhook deliveries are failing for 1 endpoint" in page and _url("org-webhooks") in page
    assert "Webhook deliveries are failing" not in member_client.get(_url("org-home")).content.decode()
    owner_client.post(
        _url("org-webhook-delivery-retry", endpoint_id=endpoint.pk, delivery_id=endpoint.deliveries.get().pk)
    )
    deliver()
    assert b"Webhook deliveries are failing" not in owner_client.get(_url("org-home")).content


def test_the_pages_warn_until_a_delivery_worker_has_run(owner_client, make_endpoint):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from credentials.webhooks.models import DeliveryWorkerHeartbeat

    endpoint, _ = make_endpoint()
    pages = [_url("org-webhooks"), _url("org-webhook-detail", endpoint_id=endpoint.pk)]
    for page in pages:
        assert b"No delivery worker has run in the last 5 minutes" in owner_client.get(page).content
    call_command("deliver_webhooks", "--once", stdout=io.StringIO())
    for page in pages:
        assert b"No delivery worker has run" not in owner_client.get(page).content
    # A runner silent for more than five minutes is as good as none.
    DeliveryWorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=6))
    assert b"No delivery worker has run" in owner_client.get(pages[0]).content


def test_an_endpoint_that_never_received_anything_is_not_all_delivered(owner_client, make_endpoint):
    endpoint, _ = make_endpoint()
    page = owner_client.get(_url("org-webhooks")).content.decode()
    assert "nothing sent yet" in page and "all delivered" not in page
    webhook_endpoint_ping(endpoint=endpoint, actor=None)
    assert "1 pending" in owner_client.get(_url("org-webhooks")).content.decode()
