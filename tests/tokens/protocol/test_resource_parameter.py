"""The RFC 8707 `resource` parameter: one `urlsplit` cannot parse is `invalid_target`, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.tokens.conftest import basic
from tokens.clients.services import m2m_app_set_exchange
from tokens.protocol.exchange import API_KEY_TOKEN_TYPE, GRANT_TYPE

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "resource", ["http://[::1", "https://[orders.example.com", "https://exa\uff03mple.com/"]
)
def test_an_unparsable_resource_is_invalid_target_not_a_500(client, app, resource):
    """RFC 8707 §2, RFC 6749 §5.2: `urlsplit` raises ValueError on these (an unclosed IPv6
    bracket, a host that changes under NFKC); the answer is 400 `invalid_target`."""
    response = client.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "resource": resource},
        HTTP_AUTHORIZATION=basic(app.client_id, app.client_secret),
    )
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"] == "invalid_target"


def test_an_unparsable_resource_at_token_exchange_is_invalid_target_not_a_500(
    client, make_app, make_key, other_organization, outsider
):
    gateway = make_app(organization=other_organization, app_owner=outsider, name="API gateway")
    m2m_app_set_exchange(application=gateway.application, allowed=True, actor=None)
    _key, plaintext = make_key()
    response = client.post(
        "/oauth/token",
        {
            "grant_type": GRANT_TYPE,
            "subject_token": plaintext,
            "subject_token_type": API_KEY_TOKEN_TYPE,
            "resource": "http://[::1",
        },
        HTTP_AUTHORIZATION=basic(gateway.client_id, gateway.client_secret),
    )
    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"] == "invalid_target"
