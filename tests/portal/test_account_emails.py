"""Account e-mails (django-allauth) link to PORTAL_BASE_URL and name the portal, never the request's Host."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

BASE = "https://portal.example"


def test_password_reset_link_uses_portal_base_url(member, mailoutbox, settings):
    settings.PORTAL_BASE_URL = BASE
    settings.ALLOWED_HOSTS = ["portal.example", "app-1.internal"]  # e.g. the app server's own name
    Client(HTTP_HOST="app-1.internal").post(reverse("account_reset_password"), {"email": member.email})
    (message,) = mailoutbox
    found = re.findall(r"https?://\S+", message.body)
    assert found, message.body
    assert all(url.startswith(BASE + "/") for url in found), (message.subject, found)
    assert message.subject.startswith("[Identity Portal] ") and "app-1.internal" not in message.body
