"""Invitations beyond the happy path: an existing account accepts, a revoked link, leaving."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from portal.models import Role
from tests.e2e.helpers import confirming, log_in, message, table_row
from tests.factories import UserFactory

pytestmark = pytest.mark.e2e


def _invite(page, email: str, role: str = "Member") -> str:
    """Invite `email` from the members page; return the link from the email."""
    page.goto("/orgs/acme/members/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Role", exact=True).select_option(label=role)
    page.get_by_role("button", name="Send invitation").click()
    expect(message(page, f"Invitation sent to {email}.")).to_be_visible()
    (link,) = re.findall(r"https?://\S+/invitations/\S+/", mail.outbox[-1].body)
    return link


@pytest.fixture
def inviting_owner(owner, organization, live_server, settings):
    settings.PORTAL_BASE_URL = live_server.url
    return owner


def test_someone_with_an_account_signs_in_and_accepts(user_page, new_context, inviting_owner, outsider):
    link = _invite(user_page(inviting_owner), outsider.email)

    page = new_context().new_page()
    page.goto(link)
    expect(page.get_by_text(f"Sign in as {outsider.email} to accept.")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    log_in(page, outsider.email)

    # Back on the invitation after signing in.
    expect(page.get_by_role("heading", level=1)).to_have_text("Join Acme Inc")
    page.get_by_role("button", name="Accept and join").click()
    expect(page).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(message(page, "Welcome to Acme Inc.")).to_be_visible()
    # Now in two organisations: the switcher offers both.
    expect(page.get_by_role("banner").get_by_label("Organisation").locator("option")).to_have_text(
        ["Acme Inc", "Globex Corp"]
    )


def test_signed_in_as_someone_else_is_told_to_switch_account(user_page, inviting_owner, member):
    link = _invite(user_page(inviting_owner), "someone.else@example.test")
    page = user_page(member)
    page.goto(link)
    expect(page.get_by_text(f"You are signed in as {member.email}.")).to_be_visible()
    expect(page.get_by_role("button", name="Accept and join")).to_have_count(0)


def test_a_revoked_invitation_link_explains_itself(user_page, new_context, inviting_owner):
    page = user_page(inviting_owner)
    link = _invite(page, "changed.mind@example.test")

    with confirming(page) as asked:
        table_row(page, "changed.mind@example.test").get_by_role("button", name="Revoke").click()
    assert asked == ["Revoke the invitation for changed.mind@example.test?"]
    expect(message(page, "The invitation for changed.mind@example.test was revoked.")).to_be_visible()
    expect(table_row(page, "changed.mind@example.test")).to_contain_text("Revoked")

    invitee = new_context().new_page()
    response = invitee.goto(link)
    assert response.status == 410
    expect(invitee.get_by_role("heading", level=1)).to_have_text("This invitation cannot be used")
    expect(invitee.get_by_text("It was withdrawn.")).to_be_visible()


def test_a_member_leaves_the_organisation(page, member, organization):
    log_in(page, member.email)
    page.get_by_role("navigation", name="Organisation").get_by_role("link", name="Members").click()
    with confirming(page) as asked:
        page.get_by_role("button", name="Leave organisation").click()
    assert asked == ["Leave Acme Inc?"]
    expect(message(page, "You left Acme Inc.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are not in an organisation yet")
    assert not member.memberships.exists()


def test_an_admin_cannot_hand_out_the_owner_role(user_page, organization, make_member):
    admin = make_member(organization, role=Role.ADMIN)
    newcomer = UserFactory()
    page = user_page(admin)
    page.goto("/orgs/acme/members/")
    page.get_by_label("Email address").fill(newcomer.email)
    page.get_by_label("Role", exact=True).select_option(label="Owner")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Only an owner can grant, change or remove the owner role."
    )
    assert not mail.outbox
