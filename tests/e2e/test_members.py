"""Members: invite and accept in a second browser, change a role, remove with confirmation, audit."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from portal.models import Membership
from tests.e2e.helpers import confirming, log_in, message, table_row

pytestmark = pytest.mark.e2e

INVITEE = "new.person@example.test"


def test_invite_a_member_who_accepts_in_a_second_browser(
    user_page, new_context, owner, organization, live_server, settings
):
    # The emailed link must point at the server the browser talks to.
    settings.PORTAL_BASE_URL = live_server.url
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    expect(page.get_by_role("heading", name="Invitations")).to_be_visible()
    expect(page.get_by_text("No invitations yet.")).to_be_visible()

    page.get_by_label("Email address").fill(INVITEE)
    page.get_by_label("Role", exact=True).select_option(label="Admin")
    page.get_by_role("button", name="Send invitation").click()

    expect(message(page, f"Invitation sent to {INVITEE}.")).to_be_visible()
    invitation_row = table_row(page, INVITEE)
    expect(invitation_row).to_contain_text("Admin")
    expect(invitation_row).to_contain_text("Pending")
    expect(invitation_row.get_by_role("button", name="Revoke")).to_be_visible()

    assert [m.to for m in mail.outbox] == [[INVITEE]]
    links = re.findall(r"https?://\S+/invitations/\S+/", mail.outbox[0].body)
    assert len(links) == 1 and links[0].startswith(live_server.url), mail.outbox[0].body
    link = links[0]

    # The invitee opens the link in their own browser and creates the account there.
    invitee = new_context().new_page()
    invitee.goto(link)
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Join Acme Inc")
    expect(invitee.get_by_text(f"You were invited as admin for {INVITEE}.")).to_be_visible()
    expect(invitee.get_by_label("Email")).to_have_value(INVITEE)
    expect(invitee.get_by_label("Email")).to_be_disabled()
    invitee.get_by_label("Full name").fill("Nova Person")
    invitee.get_by_label("Password", exact=True).fill("a long and unusual passphrase")
    invitee.get_by_label("Repeat password").fill("a long and unusual passphrase")
    invitee.get_by_role("button", name="Create account and join").click()

    expect(invitee).to_have_url(re.compile(r"/orgs/acme/$"))
    expect(message(invitee, "Your account is ready. Welcome to Acme Inc.")).to_be_visible()
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Acme Inc")
    expect(invitee.get_by_text("You are admin of this organisation.")).to_be_visible()
    expect(invitee.get_by_role("banner")).to_contain_text(INVITEE)

    # The link works once.
    invitee.goto(link)
    expect(invitee.get_by_role("heading", level=1)).to_have_text("This invitation cannot be used")
    expect(invitee.get_by_text("It has already been accepted.")).to_be_visible()

    # The inviter sees the new admin and the accepted invitation.
    page.reload()
    member_row = page.locator("table").first.locator("tbody tr").filter(has_text=INVITEE)
    expect(member_row).to_contain_text("Nova Person")
    expect(member_row).to_contain_text("Admin")
    invitation_row = page.locator("table").nth(1).locator("tbody tr").filter(has_text=INVITEE)
    expect(invitation_row).to_contain_text("Accepted")
    expect(invitation_row.get_by_role("button", name="Revoke")).to_have_count(0)


def test_invite_form_shows_field_errors(user_page, owner, member, organization):
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    page.get_by_label("Email address").fill("not an email")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".field-error")).to_have_text("Enter a valid email address.")
    expect(page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Email address").fill(member.email)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".field-error")).to_have_text("This person is already a member.")
    assert not mail.outbox


def test_change_role_remove_member_and_see_it_in_the_audit_log(user_page, owner, member, organization):
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    row = table_row(page, member.email)
    expect(row).to_contain_text("Member")

    row.get_by_label(f"Role of {member.email}").select_option(label="Admin")
    row.get_by_role("button", name="Change role").click()
    expect(message(page, f"{member.email} is now admin.")).to_be_visible()
    expect(table_row(page, member.email).locator(".badge-admin")).to_have_text("Admin")

    # Dismissing the confirmation keeps the member.
    with confirming(page, accept=False) as asked:
        table_row(page, member.email).get_by_role("button", name="Remove").click()
    expect(table_row(page, member.email)).to_have_count(1)
    assert asked == [f"Remove {member.email} from Acme Inc?"]
    assert Membership.objects.filter(user=member, organization=organization).exists()

    with confirming(page) as asked:
        table_row(page, member.email).get_by_role("button", name="Remove").click()
    expect(message(page, f"{member.email} was removed from Acme Inc.")).to_be_visible()
    expect(table_row(page, member.email)).to_have_count(0)
    assert asked == [f"Remove {member.email} from Acme Inc?"]

    page.get_by_role("navigation", name="Organisation").get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    removed = table_row(page, "portal.membership.removed")
    expect(removed).to_contain_text(member.email)
    expect(removed).to_contain_text(owner.email)
    changed = table_row(page, "portal.membership.role_changed")
    expect(changed).to_contain_text("from: member; to: admin")
    expect(changed).to_contain_text(member.email)

    page.get_by_label("Action starts with").fill("portal.membership.removed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody tr")).to_contain_text("portal.membership.removed")


def test_the_last_owner_cannot_be_demoted(user_page, owner, organization):
    page = user_page(owner)
    page.goto("/orgs/acme/members/")
    row = table_row(page, owner.email)
    row.get_by_label(f"Role of {owner.email}").select_option(label="Member")
    row.get_by_role("button", name="Change role").click()
    expect(message(page, "The organisation's last owner cannot be demoted.")).to_be_visible()
    expect(table_row(page, owner.email).locator(".badge")).to_contain_text(["Owner"])


def test_a_member_gets_403_on_the_audit_log(page, member, organization):
    log_in(page, member.email)
    response = page.goto("/orgs/acme/audit/")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("You do not have access to this page")
    expect(page.get_by_text("Only owners and admins of this organisation can do that.")).to_be_visible()

    # The members page is read-only for them, with a way to leave.
    page.goto("/orgs/acme/members/")
    expect(page.get_by_role("heading", name="Invite someone")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove")).to_have_count(0)
    expect(page.get_by_role("button", name="Leave organisation")).to_be_visible()


def test_another_organisation_is_not_found(page, outsider, organization):
    log_in(page, outsider.email)
    response = page.goto("/orgs/acme/members/")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.get_by_text("Acme Inc")).to_have_count(0)
