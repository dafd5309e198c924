"""A flag filter and the flags shown on its rows agree: an expired credential is neither.

Both judge the worked-out status: an expired key is "expired", so it is not a working
credential against the policy, nor one waiting in the orphan queue.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from credentials.api_keys.models import ApiKey
from portal.models import Membership
from portal.services.organizations import membership_remove
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def _api(client, organization, query):
    response = client.get(f"/api/v1/orgs/{organization.slug}/inventory/?{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture
def expired_keys(organization, owner, admin_user, scopes):
    # Expired: a key of a member who then left (orphaned), a key flagged against the policy.
    # Working: one of each, which the filters list.
    now = timezone.now()
    working, _ = make_api_key(organization, admin_user, name="leaver's key")
    working_flagged, _ = make_api_key(organization, owner, name="flagged key")
    ApiKey.objects.filter(pk=working_flagged.pk).update(policy_flagged_at=now - timedelta(days=1))
    leavers, _ = make_api_key(organization, admin_user, name="leaver's old key")
    flagged, _ = make_api_key(organization, owner, name="flagged old key")
    ApiKey.objects.filter(pk__in=[leavers.pk, flagged.pk]).update(expires_at=now - timedelta(days=2))
    ApiKey.objects.filter(pk=flagged.pk).update(policy_flagged_at=now - timedelta(days=1))
    membership_remove(
        membership=Membership.objects.get(organization=organization, user=admin_user), actor=owner
    )
    assert ApiKey.objects.get(pk=leavers.pk).orphaned_at is not None


@pytest.mark.parametrize("flag", ["orphaned", "against_policy"])
@pytest.mark.parametrize("param", ["flag", "attention"])
def test_every_row_a_flag_filter_lists_carries_that_flag(
    flag, param, expired_keys, owner_client, organization
):
    rows = _api(owner_client, organization, f"{param}={flag}")
    assert [(row["name"], row["status"], flag in row["flags"]) for row in rows] == [
        ("leaver's key" if flag == "orphaned" else "flagged key", "active", True)
    ]
    every = _api(owner_client, organization, "")
    assert not [row["name"] for row in every if row["status"] == "expired" and flag in row["flags"]]


def test_the_dashboard_flag_filter_and_the_flags_column_agree(expired_keys, owner_client, organization):
    response = owner_client.get(f"/orgs/{organization.slug}/inventory/?flag=orphaned")
    rows = response.context["rows"]
    assert [row.name for row in rows] == ["leaver's key"]
    assert all("orphaned" in row.flags for row in rows), [(r.name, r.status, r.flags) for r in rows]


def test_against_policy_badge_has_its_label(owner_client, organization, make_key):
    key, _ = make_key(name="old live key")
    ApiKey.objects.filter(pk=key.pk).update(policy_flagged_at=timezone.now())
    api = owner_client.get(f"/api/v1/orgs/{organization.slug}/inventory/").json()
    assert api["results"][0]["flags"] == ["against_policy"]
    page = owner_client.get(f"/orgs/{organization.slug}/inventory/").content.decode()
    # the flags cell shows no empty badge, and says what the flag is
    assert not re.search(r'<span class="badge badge-warning"></span>', page)
    assert "Against the policy" in page
