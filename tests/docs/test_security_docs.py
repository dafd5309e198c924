"""docs/security.md: the throttled answers, in each endpoint's format."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.tokens.conftest import basic

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("rate_clock")  # the limit's fixed one-minute window holds all three requests
def test_rest_throttled_answer_is_the_documented_drf_body(settings, organization, scopes):
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 2
    bad = Client(HTTP_AUTHORIZATION="Bearer ipk_live_" + "a" * 50)
    answers = [bad.get("/api/v1/whoami") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    response = answers[-1]
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", body["detail"]), body
    assert body["code"] == "throttled" and set(body) == {"detail", "code"}, body


@pytest.mark.usefixtures("rate_clock")  # the limit's fixed one-minute window holds both requests
def test_oauth_slow_down_body(settings, make_app):
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 1
    app = make_app()
    auth = basic(app.client_id, app.client_secret)
    answers = [
        Client().post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
        for _ in range(2)
    ]
    assert [answer.status_code for answer in answers] == [200, 429]
    response = answers[-1]
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == "slow_down"
    assert re.fullmatch(r"Too many requests\. Retry after \d+ seconds\.", body["error_description"]), body
