"""A world with one credential per "needs attention" item, both kinds, and usage buckets.

Shared by tests/credentials/governance/test_attention.py and tests/e2e/test_attention.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_request
from credentials.governance.approvals import credential_request_create
from credentials.governance.models import RequestType
from credentials.governance.ownership import credentials_orphan
from credentials.models import UsageBucket
from tests.factories import MembershipFactory, ScopeFactory
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication


def add_buckets(
    organization, kind: str, ref: str, granularity: str, start: datetime, **outcomes: int
) -> None:
    for outcome, count in outcomes.items():
        UsageBucket.objects.create(
            organization=organization,
            kind=kind,
            credential_id=ref,
            granularity=granularity,
            start=start,
            outcome=outcome,
            count=count,
        )


def hour_start(now: datetime, hours_ago: int) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


def day_start(now: datetime, days_ago: int) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)


def build_world(organization, other_organization, owner, member, admin_user) -> dict:
    """One credential per attention item (of either kind), plus quiet ones and usage."""
    now = timezone.now()
    for name in ("orders:read", "billing:read"):
        ScopeFactory(name=name)

    def key(name, **kw):
        return api_key_create(
            organization=organization, name=name, owner=member, scopes=["orders:read"], actor=member, **kw
        )[0]

    def app(name, who=member):
        return m2m_app_create(
            organization=organization, name=name, owner=who, scopes=["billing:read"], actor=who
        )[0]

    busy = key("busy key")
    ApiKey.objects.filter(pk=busy.pk).update(last_used_at=now - timedelta(hours=1))
    quiet = app("quiet app")
    old_key = key("old key")
    ApiKey.objects.filter(pk=old_key.pk).update(
        created_at=now - timedelta(days=90), last_used_at=now - timedelta(days=45)
    )
    never = app("never used app")
    M2MApplication.objects.filter(pk=never.pk).update(created=now - timedelta(days=40))
    key("expiring key", expires_at=now + timedelta(days=3))
    app("orphan app", who=admin_user)
    credentials_orphan(organization=organization, user=admin_user, actor=owner)
    overdue = key("overdue key")
    ApiKey.objects.filter(pk=overdue.pk).update(review_due_at=now - timedelta(days=2))
    api_key_request(
        organization=organization,
        name="pending key",
        owner=member,
        scopes=["orders:read"],
        requester=member,
        justification="reports",
    )
    widening = app("widening app")
    credential_request_create(
        credential=widening,
        requester=member,
        request_type=RequestType.SCOPE_INCREASE,
        requested_scopes=["billing:read", "orders:read"],
        justification="more",
    )
    spiking = app("spiking app")
    flagged = key("flagged key")
    ApiKey.objects.filter(pk=flagged.pk).update(policy_flagged_at=now - timedelta(days=1))

    # Usage: the busy key 120 + 30 requests in the last 30 days (and some older ones, not counted).
    add_buckets(organization, "api_key", busy.key_id, "day", day_start(now, 0), valid=100, invalid_secret=20)
    add_buckets(organization, "api_key", busy.key_id, "day", day_start(now, 10), valid=30)
    add_buckets(organization, "api_key", busy.key_id, "day", day_start(now, 31), valid=999)
    add_buckets(organization, "m2m_app", quiet.client_id, "day", day_start(now, 2), valid=7)
    # Denials spiking: 40 in the last 24 h against 14 over the 7 days before (2 a day).
    add_buckets(
        organization,
        "m2m_app",
        spiking.client_id,
        "hour",
        hour_start(now, 1),
        invalid_secret=25,
        ip_denied=15,
    )
    add_buckets(organization, "m2m_app", spiking.client_id, "hour", hour_start(now, 48), invalid_secret=14)
    # Not spiking: many denials, but as many as usual (30 today, 210 over the week before).
    add_buckets(organization, "api_key", busy.key_id, "hour", hour_start(now, 2), invalid_secret=30)
    add_buckets(organization, "api_key", busy.key_id, "hour", hour_start(now, 30), invalid_secret=210)
    # Not spiking: a jump, but under the minimum of 10.
    add_buckets(organization, "m2m_app", quiet.client_id, "hour", hour_start(now, 1), ip_denied=9)
    # Another organisation's credential and usage never count here.
    stranger = MembershipFactory(organization=other_organization).user
    theirs, _ = api_key_create(
        organization=other_organization, name="theirs", owner=stranger, scopes=[], actor=stranger
    )
    ApiKey.objects.filter(pk=theirs.pk).update(created_at=now - timedelta(days=90))
    add_buckets(other_organization, "api_key", theirs.key_id, "hour", hour_start(now, 1), ip_denied=99)
    return {"now": now}


EXPECTED = {
    "unused": {"old key", "never used app"},
    "expiring": {"expiring key"},
    "orphaned": {"orphan app"},
    "review_overdue": {"overdue key"},
    "pending": {"pending key", "widening app"},
    "denials": {"spiking app"},
    "against_policy": {"flagged key"},
}
