"""The change-password form checks the current password as step-up does: a wrong one spends the
account's failed-sign-in budget and is audited, so a stolen session cannot guess it there instead."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "n3w-long-passphrase"


def _change(client: Client, current: str):
    return client.post(
        reverse("account_change_password"),
        {"oldpassword": current, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )


def test_wrong_current_passwords_spend_the_sign_in_budget(owner, owner_client, settings):
    for _ in range(settings.PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT):
        assert _change(owner_client, "wrong-guess-123").status_code == 200  # the form again, with its error
    # The budget is spent: sign-in pauses, from any address, and the form stops checking too.
    sign_in = Client(REMOTE_ADDR="198.51.100.7").post(
        reverse("login"), {"login": owner.email, "password": PASSWORD}
    )
    assert sign_in.status_code == 429
    _change(owner_client, PASSWORD)
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_a_wrong_current_password_is_audited_as_a_failed_step_up(owner, owner_client):
    _change(owner_client, "wrong-guess-123")
    event = AuditEvent.objects.get(action="portal.account.step_up_failed")
    assert (event.actor, event.extra) == (owner, {"method": "password"})


def test_the_right_current_password_changes_it(owner, owner_client):
    response = _change(owner_client, PASSWORD)
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert not AuditEvent.objects.filter(action="portal.account.step_up_failed").exists()
