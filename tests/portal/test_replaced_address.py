"""An address staff replaced in the admin stops working: no reset links, no sign-in.

What was wrong: allauth's reset-token generator stores an EmailAddress row for the account's address
whenever a reset is asked for, and allauth finds accounts by those rows as well as by User.email.
The admin's change of address left the old row, so the former address kept receiving working
reset links (a departed domain, or whoever was given the address next) and kept signing in.
Now every save of a user deletes its rows for other addresses, and migration portal 0005 deletes
the rows already left behind.
"""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from portal.models import User
from tests.factories import PASSWORD, UserFactory
from tests.portal.test_account_security import password_step, signed_in
from tests.support.admin_forms import change_form_data
from tests.support.migrations import migrate_to, migrated_back_to

NEW_PASSWORD = "a-new-long-passphrase-42"
OLD = "dev@acme.test"
NEW = "dev@new-domain.test"
# allauth's address table is part of the historical state only when named.
ACCOUNT = ("account", "0009_emailaddress_unique_primary_email")
BEFORE = [("portal", "0004_user_email_case"), ACCOUNT]
AFTER = [("portal", "0005_delete_replaced_email_addresses"), ACCOUNT]


def _admin_changes_the_address(super_client, member, new_address: str) -> None:
    url = reverse("admin:portal_user_change", args=[member.pk])
    data = change_form_data(super_client.get(url))
    data["email"] = new_address
    data.pop("date_joined", None)
    data["date_joined_0"] = member.date_joined.strftime("%Y-%m-%d")
    data["date_joined_1"] = member.date_joined.strftime("%H:%M:%S")
    data.pop("last_login", None)
    response = super_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    member.refresh_from_db()
    assert member.email == new_address


def _ask_for_a_reset(email: str, client: Client | None = None) -> None:
    (client or Client()).post(reverse("account_reset_password"), {"email": email})


def _reset_links(mailoutbox) -> list[tuple[str, str]]:
    return [
        (to, link)
        for message in mailoutbox
        for to in message.to
        for link in re.findall(r"https?://[^/\s]+(/accounts/password/reset/key/\S+)", message.body)
    ]


@pytest.mark.django_db
def test_a_replaced_address_no_longer_receives_reset_links(member, super_client, mailoutbox):
    _ask_for_a_reset(OLD)  # the member once used "Forgotten your password?"
    _admin_changes_the_address(super_client, member, NEW)
    mailoutbox.clear()

    _ask_for_a_reset(OLD)  # whoever reads the old mailbox now
    assert _reset_links(mailoutbox) == []
    _ask_for_a_reset(NEW)
    assert [to for to, _link in _reset_links(mailoutbox)] == [NEW]


@pytest.mark.django_db
def test_the_new_holder_of_a_replaced_address_cannot_reset_the_old_account(member, super_client, mailoutbox):
    _ask_for_a_reset(OLD)
    _admin_changes_the_address(super_client, member, NEW)
    other = UserFactory(email=OLD)  # the address is free again: staff give it to someone else
    mailoutbox.clear()

    holder = Client()
    _ask_for_a_reset(OLD, holder)
    for _to, link in _reset_links(mailoutbox):
        page = holder.get(link, follow=True)
        target = page.redirect_chain[-1][0] if page.redirect_chain else link
        holder.post(target, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    member.refresh_from_db()
    other.refresh_from_db()
    assert not member.check_password(NEW_PASSWORD)
    assert other.check_password(NEW_PASSWORD)  # the reset reached the address's account: the new one


@pytest.mark.django_db
def test_a_replaced_address_no_longer_signs_in(member, super_client):
    _ask_for_a_reset(OLD)
    _admin_changes_the_address(super_client, member, NEW)
    old, new = Client(), Client()
    password_step(old, OLD, PASSWORD)
    password_step(new, NEW, PASSWORD)
    assert (signed_in(old), signed_in(new)) == (False, True)


@pytest.mark.django_db
def test_a_save_keeps_the_row_of_the_current_address_whatever_its_case(member):
    EmailAddress.objects.create(user=member, email=OLD.upper(), primary=True, verified=True)
    EmailAddress.objects.create(user=member, email="before@acme.test")
    member.full_name = "Dev"
    member.save(update_fields=["full_name"])  # names its fields, not the address: nothing to do
    assert EmailAddress.objects.filter(user=member).count() == 2
    member.save()
    assert list(EmailAddress.objects.filter(user=member).values_list("email", flat=True)) == [OLD.upper()]


@pytest.mark.django_db(transaction=True)
def test_migration_deletes_the_rows_of_replaced_addresses():
    with migrated_back_to(BEFORE) as old_apps:
        OldUser = old_apps.get_model("portal", "User")
        OldEmailAddress = old_apps.get_model("account", "EmailAddress")
        moved = OldUser.objects.create(email="moved@new.test")
        stayed = OldUser.objects.create(email="Stayed@Acme.test")
        OldEmailAddress.objects.create(user=moved, email="moved@old.test", primary=True)
        OldEmailAddress.objects.create(user=moved, email="moved@new.test")
        OldEmailAddress.objects.create(user=stayed, email="stayed@acme.test", primary=True)

        new_apps = migrate_to(AFTER)

        rows = new_apps.get_model("account", "EmailAddress").objects.order_by("email")
        assert list(rows.values_list("user_id", "email")) == [
            (moved.pk, "moved@new.test"),
            (stayed.pk, "stayed@acme.test"),
        ]
    assert User.objects.filter(pk=moved.pk).exists()
