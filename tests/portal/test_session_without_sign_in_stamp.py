"""A session from before the sign-in stamp existed starts the absolute timeout's clock, but that
start is no sign-in: it does not make the session fresh enough for a step-up."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from portal.account_security.events import CLOCK_AT, LOGIN_AT

pytestmark = pytest.mark.django_db


def _unstamped(user) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session.pop(LOGIN_AT, None)
    session["account_authentication_methods"] = []  # allauth's records of how it signed in: none
    session.save()
    return client


def test_an_unstamped_session_is_asked_to_confirm_before_a_guarded_action(owner, organization):
    client = _unstamped(owner)
    response = client.get(reverse("org-api-key-create", args=[organization.slug]))
    assert response.status_code == 302 and "reauthenticate" in response["Location"], response.get("Location")
    assert LOGIN_AT not in client.session  # still no sign-in recorded


def test_its_absolute_timeout_counts_from_the_first_request_seen(owner, organization, settings):
    client = _unstamped(owner)
    assert client.get(reverse("org-home", args=[organization.slug])).status_code == 200
    started = client.session[CLOCK_AT]
    assert abs(started - time.time()) < 60
    session = client.session
    session[CLOCK_AT] = time.time() - settings.PORTAL_SESSION_ABSOLUTE_SECONDS - 5
    session.save()
    response = client.get(reverse("org-home", args=[organization.slug]))
    assert response.status_code == 302 and reverse("login") in response["Location"]
