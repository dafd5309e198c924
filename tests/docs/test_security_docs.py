"""docs/security.md: the throttled answers, in each endpoint's format."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.tokens.conftest import basic

pytestmark = pytest.mark.django_db


def test_rest_throttled_answer_is_the_documented_drf_body(settings, organization, scopes):
    settings.PORTAL_API_KEY_FAILURES_PER_IP_PER_MINUTE = 2
    bad = Client(HTTP_AUTHORIZATION="Bearer ipk_live_" + "a" * 50)
    # Fixed one-minute windows: of five failures in a row, three share one even across a minute's end.
    answers = [bad.get("/api/v1/whoami") for _ in range(5)]
    response = next((answer for answer in answers if answer.status_code == 429), answers[-1])
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", body["detail"]), body
    assert body["code"] == "throttled" and set(body) == {"detail", "code"}, body


def test_oauth_slow_down_body(settings, make_app):
    settings.PORTAL_TOKEN_RATE_PER_APP_PER_MINUTE = 1
    app = make_app()
    auth = basic(app.client_id, app.client_secret)
    # The limit counts in fixed one-minute windows: of three requests in a row, two share one
    # (the first two may straddle a minute's end).
    answers = [
        Client().post("/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth)
        for _ in range(3)
    ]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, [answer.status_code for answer in answers]
    response = refused[0]
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == "slow_down"
    assert re.fullmatch(r"Too many requests\. Retry after \d+ seconds\.", body["error_description"]), body
