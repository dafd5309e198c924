"""Webhooks in the browser: add an endpoint, see the secret once, send a test event, see it delivered."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from credentials.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from credentials.webhooks.services import webhook_endpoint_create
from tests.credentials.webhooks.conftest import Receiver
from tests.e2e.a11y_checks import AUDIT
from tests.e2e.helpers import message, record_problems, revealed_secret, table_row

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver(settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True  # the receiver is http://127.0.0.1
    with Receiver() as server:
        yield server


def test_add_an_endpoint_see_the_secret_once_and_a_delivery(user_page, owner, organization, receiver):
    page = user_page(owner)
    problems = record_problems(page)
    page.goto("/orgs/acme/")
    page.get_by_role("navigation").get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="No webhook endpoints yet")).to_be_visible()
    page.get_by_role("link", name="Add endpoint").first.click()

    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("On-call pager")
    page.get_by_role("checkbox", name="Reported leaked").check()
    page.get_by_role("checkbox", name="Revoked (the credential, a secret or a key)").check()
    page.get_by_role("button", name="Add endpoint").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Webhook endpoint added")
    expect(page.get_by_role("alert")).to_contain_text("Copy this signing secret now")
    secret = revealed_secret(page)
    assert secret.startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["leaked", "revoked"]

    # Shown once: a reload neither shows it again nor adds a second endpoint.
    page.reload()
    expect(message(page, "cannot be shown again")).to_be_visible()
    assert secret not in page.content()
    assert WebhookEndpoint.objects.count() == 1

    page.get_by_role("button", name="Send test event").click()
    expect(message(page, "A test event was queued")).to_be_visible()
    expect(table_row(page, "webhook.ping")).to_contain_text("Pending")
    call_command("deliver_webhooks", "--once")
    page.reload()
    row = table_row(page, "webhook.ping")
    expect(row).to_contain_text("Delivered")
    expect(row).to_contain_text("200")
    (payload,) = receiver.verified(secret)
    assert payload["type"] == "webhook.ping"
    assert problems == []


def test_each_retry_button_names_its_delivery(user_page, owner, organization):
    """Two abandoned deliveries: a screen reader hears which one each "Retry now" retries (WCAG 2.4.6)."""
    endpoint, _secret = webhook_endpoint_create(
        organization=organization,
        url="https://hooks.acme.example/portal",
        event_types=["created"],
        actor=owner,
    )
    deliveries = [
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_type=event,
            payload={"type": event},
            state=DeliveryState.DEAD,
            attempts=8,
            last_attempt_at=timezone.now(),
            last_status_code=500,
            next_attempt_at=None,
        )
        for event in ("api_key.created", "api_key.revoked")
    ]
    page = user_page(owner, java_script_enabled=False)
    page.goto(f"/orgs/acme/webhooks/{endpoint.pk}/")
    for delivery in deliveries:
        name = f"Retry now the {delivery.event_type} event {delivery.event_id}"
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(1)
    assert [p for p in page.evaluate(AUDIT) if p.startswith("ambiguous button")] == []
