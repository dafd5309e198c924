"""The sign-in pause message names the pause PORTAL_LOGIN_LOCKOUT_SECONDS configures: it said
"15 minutes" whatever the setting, beside a Retry-After of another length."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.account_security.adapters import PortalAccountAdapter
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

DEFAULT_TEXT = (
    "Too many failed sign-in attempts. For your security, sign-in is paused for a while; "
    "try again in 15 minutes or reset your password."
)


def test_the_paused_sign_in_page_names_the_configured_pause(owner, settings):
    settings.PORTAL_LOGIN_LOCKOUT_SECONDS = 3600
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,20/3600s/ip,5/3600s/key"}
    for n in range(5):
        Client(REMOTE_ADDR=f"198.51.100.{n + 1}").post(
            reverse("login"), {"login": owner.email, "password": "wrong-guess-123"}
        )
    response = Client(REMOTE_ADDR="198.51.100.77").post(
        reverse("login"), {"login": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 429 and response["Retry-After"] == "3600"
    text = response.content.decode()
    assert "try again in 60 minutes or reset your password" in text
    assert "15 minutes" not in text


@pytest.mark.parametrize(
    "seconds, words",
    [
        (900, "15 minutes"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (3600, "60 minutes"),
        (45, "45 seconds"),
        (1, "1 second"),
    ],
)
def test_the_pause_is_said_in_minutes_rounded_up_or_in_seconds_under_a_minute(settings, seconds, words):
    settings.PORTAL_LOGIN_LOCKOUT_SECONDS = seconds
    message = str(PortalAccountAdapter().validation_error("too_many_login_attempts").message)
    assert message == DEFAULT_TEXT.replace("15 minutes", words)
