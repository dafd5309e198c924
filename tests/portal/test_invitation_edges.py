"""Invitations at their edges: an address longer than its column, addresses the mail layer cannot
encode or reads as another (look-alikes), and an inviter whose account staff switched off (an
invitation carries its inviter's authority, docs/security.md)."""

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail.message import sanitize_address
from django.test import Client
from django.urls import reverse

from portal.forms import InvitationForm
from portal.models import AuditEvent, Invitation, Membership, Role
from portal.services import organizations as svc
from tests.factories import MembershipFactory, UserFactory, enrol_totp

pytestmark = pytest.mark.django_db

# A well-formed address of 260 characters: Django's forms.EmailField takes up to 320, while
# Invitation.email (a models.EmailField) holds 254.
LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com"


def _owner_invitation(organization, owner, email: str) -> tuple[Invitation, str]:
    return svc.invitation_create(
        organization=organization,
        email=email,
        role=Role.OWNER,
        actor=owner,
        actor_membership=Membership.objects.get(user=owner, organization=organization),
    )


def test_an_address_longer_than_the_column_is_a_field_error(owner_client, organization):
    """The invite form refuses what Invitation.email cannot hold: a 400 naming the field, not a
    PostgreSQL DataError (a 500) nor, on SQLite, a row longer than the model allows."""
    owner_client.raise_request_exception = False
    response = owner_client.post(
        reverse("org-invite", args=[organization.slug]), {"email": LONG_EMAIL, "role": "member"}
    )
    assert response.status_code == 400
    assert "email" in response.context["invite_form"].errors
    assert not Invitation.objects.filter(email=LONG_EMAIL).exists()


def test_a_switched_off_owners_owner_invitation_grants_nothing(organization, owner):
    """A deactivated account lends no role (portal.selectors.authority_memberships), so an owner
    invitation it sent (to an attacker's address, say) makes no owner once staff switch it off."""
    MembershipFactory(organization=organization, role=Role.OWNER, user=UserFactory(email="second@acme.test"))
    _invitation, token = _owner_invitation(organization, owner, "attacker@evil.test")
    owner.is_active = False  # what the admin's *Active* switch writes
    owner.save()

    with pytest.raises(ValidationError) as refused:
        svc.invitation_accept(token=token, user=UserFactory(email="attacker@evil.test"))
    assert refused.value.code == "inviter_lost_role"
    assert not Membership.objects.filter(user__email="attacker@evil.test").exists()


def test_switching_an_account_off_in_the_admin_revokes_the_invitations_it_sent(organization, owner):
    """The invitation is shown revoked (audited, `reason: inviter_lost_role`), as when its inviter
    is removed, rather than left open in the list while it can grant nothing."""
    MembershipFactory(organization=organization, role=Role.OWNER, user=UserFactory(email="second@acme.test"))
    invitation, _token = _owner_invitation(organization, owner, "new-owner@acme.test")
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)
    admin = Client()
    admin.force_login(staff)

    form = {
        "email": owner.email,
        "full_name": owner.full_name,
        "date_joined_0": owner.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": owner.date_joined.strftime("%H:%M:%S"),
    }  # "is_active" unticked
    response = admin.post(reverse("admin:portal_user_change", args=[owner.pk]), form)
    assert response.status_code == 302, response.content[:500]

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    revoked = AuditEvent.objects.get(action="portal.invitation.revoked", target_id=str(invitation.pk))
    assert (revoked.actor, revoked.extra["reason"]) == (staff, "inviter_lost_role")


# A 63-letter IDN label passes Django's EmailValidator (it counts letters, not the encoded
# A-label), but encodes to more than 63 ASCII characters: the mail layer's IDNA codec refuses it.
LONG_IDN = "a@" + "\u00fc" * 63 + ".test"


def _post_invite(user, organization, email: str, role: str = "member"):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client.post(reverse("org-invite", args=[organization.slug]), {"email": email, "role": role})


@pytest.mark.django_db(transaction=True)  # the e-mail is sent on commit
def test_an_address_whose_domain_cannot_be_encoded_is_a_form_error_not_a_500(owner, organization):
    response = _post_invite(owner, organization, LONG_IDN)
    assert response.status_code != 500, "inviting an address with an un-encodable domain is a 500"
    assert response.status_code == 400
    assert "cannot be encoded for e-mail" in response.context["invite_form"].errors["email"][0]
    assert not Invitation.objects.exists(), "the invitation was committed, then the request failed"


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        (LONG_IDN, "cannot be encoded for e-mail"),
        ("owner@acme.test\u200b", "invisible character (U+200B ZERO WIDTH SPACE)"),
        ("\u0130@x.test", "Enter a valid email address"),
    ],
    ids=["long-idn-label", "zero-width-space", "dotted-capital-i"],
)
def test_the_invite_form_refuses_what_cannot_be_mailed_as_typed(typed, error):
    """The form says so on the field before the service runs (nothing is committed)."""
    form = InvitationForm({"email": typed, "role": Role.MEMBER})
    assert not form.is_valid()
    assert error in form.errors["email"][0]


def test_the_service_refuses_an_address_the_mail_layer_cannot_encode(organization, owner):
    """The admin, commands and tests call the service without the form."""
    with pytest.raises(ValidationError) as refused:
        svc.invitation_create(organization=organization, email=LONG_IDN, role=Role.MEMBER, actor=owner)
    assert "email" in refused.value.message_dict
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("address", ["\u0130@x.test", "I\u0307@x.test"])
def test_an_address_invalid_once_lower_cased_is_refused(organization, owner, address):
    """`İ` passes EmailValidator, but lower case makes it `i` and a combining dot: an address nobody
    can be mailed at. The normalised form is what is validated (and stored)."""
    with pytest.raises(ValidationError) as refused:
        svc.invitation_create(organization=organization, email=address, role=Role.MEMBER, actor=owner)
    assert "email" in refused.value.message_dict
    assert not Invitation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_e_mail_that_fails_after_commit_does_not_fail_the_request(
    owner, organization, monkeypatch, caplog
):
    """The invitation is committed when the e-mail goes: a failure there is logged (never the link,
    a secret), and the inviter still gets the page that offers "Resend and copy link"."""

    def broken_send_mail(*args, **kwargs):
        raise UnicodeError("encoding with 'idna' codec failed")

    monkeypatch.setattr(svc, "send_mail", broken_send_mail)
    with caplog.at_level(logging.WARNING, logger="portal.services.organizations"):
        response = _post_invite(owner, organization, "new@example.test")
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    logged = [r for r in caplog.records if r.name == "portal.services.organizations"]
    assert [r.getMessage() for r in logged] == [
        f"Invitation {invitation.pk}: its e-mail could not be sent (UnicodeError)."
    ]
    assert "/invitations/" not in caplog.text


# Addresses that the mail layer delivers to an existing member's mailbox (IDNA maps the zero-width
# space to nothing and full-width letters to ASCII) but that were stored, compared ("already a
# member") and shown as different text: the invitee got a second account that reads, on the
# members page and in the audit log, as the existing person.
LOOKALIKES = ["owner@acme.test\u200b", "owner@\uff41cme.test"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("address", LOOKALIKES)
def test_a_lookalike_of_a_members_address_is_refused(owner, organization, address):
    # What the SMTP envelope carries for it (Django's sanitize_address, IDNA): the owner's mailbox.
    assert sanitize_address(("", address), "utf-8") == "owner@acme.test"
    admin = MembershipFactory(
        organization=organization, role="admin", user=UserFactory(email="adm@acme.test")
    )
    response = _post_invite(admin.user, organization, address, role="admin")
    assert response.status_code == 400, (
        f"{address!r} (mailed to owner@acme.test) was accepted as a new address: {response.status_code}"
    )
    assert not Invitation.objects.exists()


def test_an_invisible_character_is_named_in_the_error(organization, owner):
    with pytest.raises(ValidationError) as refused:
        svc.invitation_create(
            organization=organization, email="new@acme.test\u200b", role=Role.MEMBER, actor=owner
        )
    assert refused.value.message_dict["email"] == [
        "This address contains an invisible character (U+200B ZERO WIDTH SPACE); type it again without it."
    ]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("New.Person+Tag@Example.TEST", "new.person+tag@example.test"),  # ASCII: lower case, as before
        ("\uff2e\uff45\uff57@\uff45xample.test", "new@example.test"),  # full-width letters
        ("new@M\u00dcLLER.test", "new@m\u00fcller.test"),  # an IDN domain, in lower case
        ("new@stra\u00dfe.test", "new@strasse.test"),  # what IDNA mails it to
    ],
)
def test_an_invitation_stores_the_address_mail_reaches(organization, owner, typed, stored):
    invitation, _token = svc.invitation_create(
        organization=organization, email=typed, role=Role.MEMBER, actor=owner
    )
    assert invitation.email == stored
    assert svc.canonical_invitation_email(stored) == stored  # one spelling: canonical is canonical


def test_the_account_created_from_an_invitation_has_its_address(organization, owner):
    """User.objects.create_user normalises too (lower case): the account and the invitation must
    still name the same address, or the invitation could not be accepted by its own account."""
    invitation, token = svc.invitation_create(
        organization=organization, email="\uff2eew@M\u00dcLLER.test", role=Role.MEMBER, actor=owner
    )
    user, membership = svc.user_create_from_invitation(
        token=token, full_name="New", password="a-long-passphrase-1"
    )
    assert user.email == invitation.email == "new@müller.test"
    assert membership.organization == organization
    with pytest.raises(ValidationError, match="already a member"):
        svc.invitation_create(
            organization=organization,
            email="\uff2e\uff25\uff37@M\u00dcLLER.TEST",
            role=Role.MEMBER,
            actor=owner,
        )


def test_the_invite_form_stores_mails_and_shows_one_address(
    owner_client, organization, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("org-invite", args=[organization.slug]),
            {"email": "New@\uff45xample.test", "role": "member"},
            follow=True,
        )
    assert Invitation.objects.get().email == "new@example.test"
    assert [message.to for message in mail.outbox] == [["new@example.test"]]
    assert "Invitation sent to new@example.test." in response.content.decode()
