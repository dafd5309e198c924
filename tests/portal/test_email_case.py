"""Sign-in addresses are unique ignoring letter case, as sign-in looks them up
(UserManager.get_by_natural_key): `DEV@acme.test` beside `dev@acme.test` made signing in as either a 500."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from portal.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TAKEN = "Another account already has this email address, perhaps in other letter case."


def test_the_admin_refuses_a_new_account_whose_address_differs_only_in_case(staff_client, member):
    response = staff_client.post(
        reverse("admin:portal_user_add"),
        {
            "email": member.email.upper(),
            "full_name": "Twin",
            "password1": "a-long-passphrase-9",
            "password2": "a-long-passphrase-9",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"] == [TAKEN]
    assert User.objects.filter(email__iexact=member.email).count() == 1
    sign_in = Client().post(reverse("login"), {"login": member.email, "password": PASSWORD})
    assert sign_in.status_code == 302


def test_the_admin_refuses_changing_an_address_to_another_accounts_in_other_case(staff_client, member, owner):
    response = staff_client.post(
        reverse("admin:portal_user_change", args=[owner.pk]),
        {
            "email": member.email.upper(),
            "full_name": owner.full_name,
            "is_active": "on",
            "date_joined_0": owner.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": owner.date_joined.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"] == [TAKEN]
    owner.refresh_from_db()
    assert owner.email != member.email.upper()


def test_the_admin_still_saves_an_account_under_its_own_address(staff_client, owner):
    response = staff_client.post(
        reverse("admin:portal_user_change", args=[owner.pk]),
        {
            "email": owner.email.upper(),  # its own address in other case is no twin
            "full_name": "Renamed",
            "is_active": "on",
            "date_joined_0": owner.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": owner.date_joined.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    owner.refresh_from_db()
    assert owner.full_name == "Renamed"


def test_the_database_refuses_a_twin_whatever_the_path(member):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email=member.email.upper())


def _add_account(client: Client, email: str):
    return client.post(
        reverse("admin:portal_user_add"),
        {
            "email": email,
            "full_name": "New person",
            "password1": "a-long-passphrase-9",
            "password2": "a-long-passphrase-9",
            "usable_password": "true",
        },
    )


@pytest.mark.parametrize("lookalike", ["{local}@\uff41cme.test", "{local}@acme.test\u200b"])
def test_the_admin_refuses_a_lookalike_of_an_existing_address(staff_client, lookalike):
    # Mail reaches the existing mailbox through either spelling (IDNA), so the account would be a
    # second person who reads as the first; invitations refuse the same (test_invitation_edges).
    UserFactory(email="owner@acme.test")
    response = _add_account(staff_client, lookalike.format(local="owner"))
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["email"]
    assert error == TAKEN or "invisible character (U+200B ZERO WIDTH SPACE)" in error
    assert User.objects.filter(email__icontains="owner@").count() == 1


def test_the_admin_stores_a_new_address_in_its_canonical_spelling(staff_client):
    response = _add_account(staff_client, "New.Person@\uff45xample.TEST")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert User.objects.filter(email="new.person@example.test").exists()
