"""The per-account sign-in lockout (docs/security.md, "Rate limits": failed logins per account)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD
from tests.portal.test_account_security import make_stale

pytestmark = pytest.mark.django_db


def _attempt(password: str, ip: str, **headers):
    return Client(REMOTE_ADDR=ip).post(
        reverse("login"), {"login": "owner@acme.test", "password": password}, **headers
    )


def test_the_per_account_lockout_cannot_be_reset_by_changing_the_host_header(owner, settings):
    settings.ALLOWED_HOSTS = ["testserver", "portal.example"]
    # A distributed guesser: each attempt from another address, so only the per-account count bites.
    for n in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        assert _attempt("wrong-guess-123", f"198.51.100.{n + 1}").status_code == 200
    assert _attempt(PASSWORD, "198.51.100.50").status_code == 429  # locked, as documented
    # The same account, the same form: only the Host header's port (or another allowed host) differs.
    for n, host in enumerate(["testserver:8443", "portal.example", "PORTAL.example:1"]):
        response = _attempt(PASSWORD, f"198.51.100.{60 + n}", HTTP_HOST=host)
        assert response.status_code == 429, (host, response.status_code)


def test_wrong_passwords_at_step_up_are_limited_like_failed_sign_ins(owner, owner_client, settings):
    """A wrong password at step-up spends the account's `login_failed` budget like a sign-in (allauth's
    own reauthentication does): a stolen session cannot guess the password there without limit."""
    make_stale(owner_client)
    for _ in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        owner_client.post(reverse("account_reauthenticate"), {"password": "wrong-guess-123"})
    # The account's failure budget is spent: the next guess is not even checked, the right one included.
    owner_client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    page = owner_client.get(reverse("org-api-key-create", args=["acme"]))
    assert page.status_code == 302 and "reauthenticate" in page["Location"]
