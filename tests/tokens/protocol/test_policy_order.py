"""/oauth/token: every allowlist (the application's, then its trust's) comes before the counted
limits (the application's rate limit, the trust's, then the issuance quota or per-minute rate).
A request from a refused address is 400 `unauthorized_client`, counted `ip_denied`, and spends
no budget, so whoever holds a leaked secret outside the allowlist cannot lock the application
out (docs/api-keys.md, docs/security.md); a quota's 429 to a rate-limited client carries the
RateLimit fields like every answer to it (docs/m2m.md)."""

from __future__ import annotations

import pytest
from django.test import Client

from credentials import usage
from tests.support.usage import outcome_counts
from tests.tokens.conftest import request_token
from tokens.clients.services import m2m_app_token_quota_set

# The limits count in fixed windows (a minute, an hour): their clock stands still in every test here,
# so a test's requests share one window even when one ends between them (tests/support/clock.py).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rate_clock")]


@pytest.fixture(autouse=True)
def _fresh_usage_counters():
    usage._counts.clear()
    yield
    usage._counts.clear()


INSIDE, OUTSIDE = "203.0.113.7", "198.51.100.9"


def token_from(creds, ip):
    return request_token(Client(REMOTE_ADDR=ip), creds)


def test_requests_from_a_refused_address_do_not_spend_the_issuance_budget(make_app, settings):
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 3
    creds = make_app(allowed_ips=[f"{INSIDE}/32"])
    for _ in range(3):
        refused = token_from(creds, OUTSIDE)
        assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    # The application itself, from its own network: nothing issued yet, the budget is untouched.
    response = token_from(creds, INSIDE)
    assert response.status_code == 200, response.content


def test_a_refused_address_is_unauthorized_client_even_past_the_quota(make_app):
    creds = make_app(allowed_ips=[f"{INSIDE}/32"])
    m2m_app_token_quota_set(application=creds.application, actor=None, token_quota={"per_hour": 1})
    assert token_from(creds, INSIDE).status_code == 200
    usage._counts.clear()
    refused = token_from(creds, OUTSIDE)
    # docs/m2m.md: "from an address outside the list: 400 unauthorized_client"
    assert refused.status_code == 400, (refused.status_code, refused.content)
    assert refused.json()["error"] == "unauthorized_client"
    assert "Retry-After" not in refused
    usage.rollup()
    assert outcome_counts(creds.client_id).get("ip_denied") == 1


def test_a_quota_refusal_to_a_rate_limited_client_carries_the_ratelimit_fields(make_app):
    # docs/m2m.md, runtime policy: "every answer to a limited client carries
    # `RateLimit-Policy: "default";q=N;w=S` and `RateLimit: ...`" (429s of the issuance limits included).
    creds = make_app(rate_limit={"requests": 100, "per_seconds": 60})
    m2m_app_token_quota_set(application=creds.application, actor=None, token_quota={"per_hour": 1})
    first = token_from(creds, INSIDE)
    assert first.status_code == 200 and first["RateLimit-Policy"] == '"default";q=100;w=60'
    refused = token_from(creds, INSIDE)
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
    assert refused.get("RateLimit-Policy") == '"default";q=100;w=60'
    assert (refused.get("RateLimit") or "").startswith('"default";r=')


def test_requests_a_trusts_allowlist_refuses_do_not_spend_the_applications_rate_limit(
    organization, owner, scopes, oidc_issuer
):
    # docs/api-keys.md (the runtime policy both kinds share): "The address is checked before the
    # request is counted, so requests from refused addresses do not spend the budget." The
    # application's policy (its limit counted) runs before the trust's allowlist refuses.
    from django.conf import settings

    from credentials.governance.edits import credential_policy_set
    from tests.factories import make_m2m_app
    from tokens.federation.services import federated_identity_create
    from tokens.protocol.assertions import JWT_BEARER_ASSERTION_TYPE

    application, _secret = make_m2m_app(
        organization, owner, name="trusting", rate_limit={"requests": 2, "per_seconds": 60}
    )
    identity, _request = federated_identity_create(
        application=application,
        actor=None,
        issuer=oidc_issuer.url,
        subject="repo:acme/api:ref:refs/heads/main",
    )
    credential_policy_set(credential=identity, actor=owner, allowed_ips=[INSIDE])

    def present(ip):
        return Client().post(
            "/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": application.client_id,
                "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
                "client_assertion": oidc_issuer.github_actions(audience=settings.PORTAL_ISSUER),
            },
            REMOTE_ADDR=ip,
        )

    for _ in range(2):
        refused = present(OUTSIDE)
        assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    response = present(INSIDE)
    assert response.status_code == 200, response.content
