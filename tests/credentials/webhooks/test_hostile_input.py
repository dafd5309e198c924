"""Hostile input to the webhook pages and REST API: field errors or 4xx, never a 500 or a stored row."""

from __future__ import annotations

import pytest
from django.urls import reverse

from credentials.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

BASE = "/api/v1/orgs/acme/webhooks/"
HUGE_ID = 2**63  # beyond PostgreSQL's bigint

BAD_URLS = [
    "https://" + "a" * 600 + ".example/",
    "https://hooks.example.com/" + "é" * 50,
    "https://ｅｘａｍｐｌｅ.com/",  # fullwidth letters
    "https://hooks.example.com\u202e/moc.live",  # right-to-left override
    "https://[::1",
    "https://[zz::1]/",
    "https://hooks.example.com:-1/",
    "https://hooks.example.com:0x1bb/",
    "https:///path",
    "https://%00/",
    "https://hooks%2eexample.com/",
    "https://-bad.example.com/",
    "https://hooks..example.com/",
    "https://hooks.example.com%0d%0aX:1/",
    "https://" + "a" * 64 + ".example/",
    "\x00",
    "https://2130706433/",
    "https://[::ffff:7f00:1]/",
    "https://[64:ff9b::a00:1]/",
    "   ",
]

BAD_OVERLAPS = ["-1", "169", "abc", "1e3", "", "24.5", str(2**70)]


@pytest.fixture
def production(settings):
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = False


def _url(name: str, **kwargs) -> str:
    return reverse(name, kwargs={"org_slug": "acme", **kwargs})


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_form_refuses_bad_urls(production, owner_client, url):
    response = owner_client.post(
        _url("org-webhook-create"), {"url": url, "event_types": ["created"], "submission": "t" * 20}
    )
    assert response.status_code == 400
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_api_refuses_bad_urls(production, machine, url):
    response = machine.post(BASE, {"url": url, "event_types": ["created"]}, "application/json")
    assert response.status_code == 400 and "url" in response.json(), response.content
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"description": "x" * 5000},
        {"description": "\x00"},
        {"description": ["a", "b"]},
        {"event_types": ["created"] * 50},
        {"event_types": [{"x": 1}]},
        {"event_types": [None]},
        {"event_types": {"created": True}},
        {"event_types": "created"},
        {"active": "maybe"},
        {"active": None},
    ],
)
def test_the_api_refuses_bad_changes(production, machine, make_endpoint, data):
    endpoint, _ = make_endpoint(url="https://hooks.example.com/x")
    response = machine.patch(f"{BASE}{endpoint.pk}/", data, "application/json")
    assert response.status_code == 400, response.content
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.description == "test receiver"


@pytest.mark.parametrize("overlap", BAD_OVERLAPS)
def test_invalid_overlaps_are_refused(production, machine, owner_client, make_endpoint, overlap):
    endpoint, _ = make_endpoint(url="https://hooks.example.com/x")
    hint = endpoint.secret_hint
    response = machine.post(
        f"{BASE}{endpoint.pk}/rotate-secret/", {"overlap_hours": overlap}, "application/json"
    )
    assert response.status_code == 400 and "overlap_hours" in response.json()
    response = owner_client.post(
        _url("org-webhook-rotate", endpoint_id=endpoint.pk),
        {"overlap_hours": overlap, "submission": "s" * 20},
    )
    assert response.status_code == 400
    endpoint.refresh_from_db()
    assert endpoint.secret_hint == hint


@pytest.mark.parametrize("overlap", [None, [24], {"hours": 24}, True, -(2**70)])
def test_the_api_refuses_overlaps_of_the_wrong_type(production, machine, make_endpoint, overlap):
    endpoint, _ = make_endpoint(url="https://hooks.example.com/x")
    response = machine.post(
        f"{BASE}{endpoint.pk}/rotate-secret/", {"overlap_hours": overlap}, "application/json"
    )
    assert response.status_code == 400 and "overlap_hours" in response.json()


def test_garbage_bodies_are_400(machine, make_endpoint):
    endpoint, _ = make_endpoint(url="https://hooks.example.com/x")
    for path, method in ((BASE, "post"), (f"{BASE}{endpoint.pk}/", "patch")):
        for body in (b"{", b"[]", b"null", b'"x"', '{"url": "\udcff"}'.encode("utf-8", "surrogatepass")):
            response = getattr(machine, method)(path, body, "application/json")
            assert response.status_code == 400, (path, body, response.content)


def test_out_of_range_and_foreign_ids_are_404(owner_client, machine, make_endpoint):
    endpoint, _ = make_endpoint(url="https://hooks.example.com/x")
    for name, kwargs in (
        ("org-webhook-detail", {"endpoint_id": HUGE_ID}),
        ("org-webhook-rotate", {"endpoint_id": HUGE_ID}),
        ("org-webhook-delivery-retry", {"endpoint_id": endpoint.pk, "delivery_id": HUGE_ID}),
        ("org-webhook-delivery-retry", {"endpoint_id": HUGE_ID, "delivery_id": 1}),
    ):
        response = owner_client.post(_url(name, **kwargs), {"submission": "x" * 20})
        assert response.status_code == 404, name
    assert machine.get(f"{BASE}{HUGE_ID}/").status_code == 404
    assert machine.post(f"{BASE}{endpoint.pk}/deliveries/{HUGE_ID}/retry/").status_code == 404
    assert machine.get(f"{BASE}{endpoint.pk}/deliveries/?page=99999999999999999999").status_code == 404
    assert (
        owner_client.get(_url("org-webhook-detail", endpoint_id=endpoint.pk) + "?page=-1").status_code == 200
    )


@pytest.mark.parametrize(
    "data",
    [
        {"description": "x" * 5000, "event_types": ["created"]},
        {"description": "\x00", "event_types": ["created"]},
        {"description": "ok", "event_types": ["exploded"]},
        {"description": "ok", "event_types": []},
    ],
)
def test_the_edit_form_refuses_bad_input(production, owner_client, make_endpoint, data):
    endpoint, _ = make_endpoint(url="https://hooks.example.com/x")
    response = owner_client.post(_url("org-webhook-edit", endpoint_id=endpoint.pk), data)
    assert response.status_code == 400
    endpoint.refresh_from_db()
    assert endpoint.description == "test receiver"
