"""A trust's page lists its claim conditions whatever the claims are named.

What was wrong: the template looped over `identity.conditions.items`, and Django's template
lookup tries `conditions["items"]` before the dict's method. A condition on a claim named
`items` (a valid claim name, trust._CLAIM_NAME) made the page a 500, or listed a made-up
condition. The view now hands the template a sorted list of (name, values).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.tokens.federation.test_federation import add_trust

pytestmark = pytest.mark.usefixtures("local_issuers")


def test_a_condition_on_a_claim_named_items_is_shown(owner_client, app, organization):
    identity = add_trust(
        app.application,
        "http://127.0.0.1:9",
        "repo:acme/api:ref:refs/heads/main",
        conditions=["items=main", "repository=acme/api", "repository=acme/web"],
    )
    response = owner_client.get(reverse("org-federated-detail", args=[organization.slug, identity.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<code>items</code> = <code>main</code><br>" in page
    assert "<code>repository</code> = <code>acme/api</code> or <code>acme/web</code><br>" in page
