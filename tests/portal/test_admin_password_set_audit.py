"""Staff setting an account's password in the admin write `portal.user.password_set`.

What was wrong: staff (a superuser, or staff with `change_user` for a customer's account) can set
any customer's password, which takes the account over, and only Django's LogEntry recorded it: no
AuditEvent, so the organisation's log showed nothing. Now it is audited as the account's new address
is (`portal.user.email_changed`): one event in each of its organisations, or one with no
organisation for an account of none; a refused form writes nothing, and no event holds the password.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Membership, Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NEW = "N3w-very-long-pass!"


def _set_password(client, user, **data):
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    return client.post(url, {"password1": NEW, "password2": NEW, "usable_password": "true", **data})


def _events():
    return AuditEvent.objects.filter(action="portal.user.password_set").order_by("id")


def test_a_customers_password_set_by_staff_is_audited_in_each_of_its_organisations(
    super_client, superuser, organization, other_organization, owner
):
    Membership.objects.create(organization=other_organization, user=owner, role=Role.MEMBER)

    response = _set_password(super_client, owner)

    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(NEW)
    events = list(_events())
    assert sorted((e.organization.slug, e.extra["role"]) for e in events) == [
        ("acme", Role.OWNER),
        ("globex", Role.MEMBER),
    ]
    for event in events:
        assert (event.actor, event.target_label) == (superuser, "owner@acme.test")
        assert event.extra == {"usable": True, "role": event.extra["role"], "via": "admin"}
        assert NEW not in str(event.extra) and owner.password not in str(event.extra)


def test_an_account_of_no_organisation_gets_one_event_for_staff(super_client, superuser):
    account = UserFactory(email="ops@portal.test", is_staff=True)

    assert _set_password(super_client, account).status_code == 302

    (event,) = _events()
    assert (event.organization, event.actor, event.target_label) == (None, superuser, "ops@portal.test")
    assert event.extra == {"usable": True, "via": "admin"}


def test_disabling_password_sign_in_is_audited_too(super_client, owner):
    response = super_client.post(
        reverse("admin:auth_user_password_change", args=[owner.pk]),
        {"usable_password": "false", "unset-password": "1"},
    )

    assert response.status_code == 302
    owner.refresh_from_db()
    assert not owner.has_usable_password()
    (event,) = _events()
    assert event.extra["usable"] is False


@pytest.mark.parametrize(
    "data",
    [
        {"password2": "something-else-entirely"},  # the form's own error: the page again
        {"usable_password": "false"},  # Django's "Conflicting form data": a redirect, nothing saved
    ],
    ids=["mismatch", "conflicting"],
)
def test_a_refused_form_writes_no_event(super_client, owner, data):
    before = owner.password

    response = _set_password(super_client, owner, **data)

    assert response.status_code == (302 if "usable_password" in data else 200)

    owner.refresh_from_db()
    assert owner.password == before
    assert not _events().exists()
