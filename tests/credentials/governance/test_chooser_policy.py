"""The credential chooser against the organisation's policy on kinds (docs/choosing.md)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from credentials.governance.org_policy import policy_update

pytestmark = pytest.mark.django_db


def test_no_create_an_api_key_button_is_offered_when_the_policy_forbids_every_new_api_key(
    member_client, organization, owner
):
    policy_update(
        organization=organization, actor=owner, new_live_api_keys="forbidden", new_test_api_keys="forbidden"
    )
    url = reverse("org-credential-new", args=["acme"]) + "?static_only=yes"
    html = member_client.get(url).content.decode()
    button = re.search(r'<a[^>]*id="create-recommended"[^>]*>', html)
    create_key = reverse("org-api-key-create", args=["acme"])
    # Every new API key would be refused: the recommended action must not be a form that can only fail.
    assert button is None or create_key not in button.group(0), button.group(0)


def test_the_private_key_question_points_to_workload_federation(member_client):
    html = member_client.get(reverse("org-credential-new", args=["acme"])).content.decode()
    assert "not offered yet" not in html
    assert "workload federation removes even that key" in html and "Federated identities" in html
