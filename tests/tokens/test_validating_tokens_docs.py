"""The organisation-pinning snippet in docs/validating-tokens.md works against a live server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import ResourceServerFactory
from tests.tokens.conftest import basic

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = Path(settings.BASE_DIR) / "docs" / "validating-tokens.md"
AUDIENCE = "https://orders.acme.example"


def _pin_snippet() -> str:
    return re.search(r"### Pin the organisation.*?```python\n(.*?)```", DOCS.read_text(), re.S).group(1)


def test_the_pinning_snippet_accepts_acme_and_refuses_another_organisation(
    live_server, settings, make_app, organization, other_organization, outsider
):
    settings.PORTAL_ISSUER = live_server.url
    # Even if the catalogue let both organisations name the audience, the pinned service holds.
    ResourceServerFactory(identifier=AUDIENCE, organizations=[organization, other_organization])
    acme = make_app(audiences=[AUDIENCE])
    globex = make_app(
        organization=other_organization, app_owner=outsider, name="Globex", audiences=[AUDIENCE]
    )

    def bearer(creds) -> str:
        response = Client().post(
            "/oauth/token",
            {"grant_type": "client_credentials", "resource": AUDIENCE},
            HTTP_AUTHORIZATION=basic(creds.client_id, creds.client_secret),
        )
        assert response.status_code == 200, response.content
        return "Bearer " + json.loads(response.content)["access_token"]

    namespace: dict = {}
    code = _pin_snippet().replace("https://portal.example.com", live_server.url)
    exec(compile(code, "docs/validating-tokens.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    assert namespace["authenticate"](bearer(acme)) == acme.client_id
    with pytest.raises(PermissionError) as caught:
        namespace["authenticate"](bearer(globex))
    assert caught.value.__cause__.reason == "wrong organization"
