"""The MFA enrolment gate's cached "not needed" decision must not outlive a requirement that was
being committed while it was computed (PostgreSQL: real transactions, two connections). The gate's
version moved only when the change was saved, before its commit: a page opened in between read the
old requirement and cached "not needed" under the new version, for up to a minute."""

from __future__ import annotations

import threading

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import MfaRequirement
from portal.services import organizations as svc
from tests.support.threads import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_page_opened_while_the_requirement_commits_does_not_exempt_the_member_afterwards(
    require_postgres, redis_cache, organization, owner, member, monkeypatch
):
    member_client = Client(raise_request_exception=False)
    member_client.force_login(member)
    home = reverse("org-home", args=[organization.slug])
    assert member_client.get(home).status_code == 200  # no requirement yet: the gate caches "not needed"

    saved_not_committed = threading.Event()
    page_served = threading.Event()
    real_audit_log = svc.audit_log

    def audit_then_wait(**kwargs):
        # Called right after organization.save(): the gate's version was bumped (post_save), the
        # new requirement is not committed yet.
        if kwargs.get("action") == "portal.organization.mfa_requirement_changed":
            saved_not_committed.set()
            assert page_served.wait(10)
        return real_audit_log(**kwargs)

    monkeypatch.setattr(svc, "audit_log", audit_then_wait)

    def owner_requires_mfa():
        svc.organization_set_mfa_requirement(
            organization=organization, requirement=MfaRequirement.EVERYONE, actor=owner
        )

    def member_opens_a_page():
        assert saved_not_committed.wait(10)
        try:
            return member_client.get(home)
        finally:
            page_served.set()

    results = run_together(("owner", owner_requires_mfa), ("member", member_opens_a_page))
    assert not isinstance(results["owner"], BaseException), results
    organization.refresh_from_db()
    assert organization.mfa_required == MfaRequirement.EVERYONE

    # The requirement is committed: the member (no second factor) must now be sent to enrolment.
    response = member_client.get(home)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_index"), (
        f"member without a second factor still served {home} ({response.status_code}) after the "
        "organisation's requirement was committed"
    )
