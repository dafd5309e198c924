"""The approvals page lists what waits for a decision: none may silently fall off the list."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from credentials.api_keys.services import api_key_request

pytestmark = pytest.mark.django_db


def test_the_101st_waiting_request_is_shown_or_counted(owner_client, organization, member, scopes):
    for i in range(101):
        api_key_request(
            organization=organization,
            name=f"request {i:03d}",
            owner=member,
            scopes=["orders:read"],
            requester=member,
            justification="nightly",
        )
    page = owner_client.get(reverse("org-approvals", kwargs={"org_slug": organization.slug}))
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", " ", page.content.decode())  # what a person reads
    # Oldest first: the newest request is the one past the first 100.
    assert "request 100" in text or re.search(r"\b101\b", text), (
        "the newest waiting request is neither listed nor counted"
    )
    assert "/orgs/acme/inventory/?attention=pending" in page.content.decode()  # where all of them are
