"""The application a key moves to starts with the key's scope use, as a rotation's successor does.

What was wrong: the move created the application with no scope-use rows, so its page said every
scope was "never used in 30 days" and "Narrow to what is used" could take from it a scope the
same integration relies on once a month, though usage.md promises a just-replaced credential
never loses one. The key's `UsageScope` rows are now copied to the application (count 0,
`last_used` kept) when it is created, and again when a pending one gets its first secret (the
key kept working while the request waited).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from credentials.api_keys.services import api_key_rotate
from credentials.governance.approvals import credential_request_approve, credential_secret_issue
from credentials.governance.org_policy import policy_update
from credentials.insight.models import UsageScope
from credentials.insight.selectors import scope_suggestion
from credentials.insight.services import credential_scopes_narrow_to_used, scope_use_carry_over
from tokens.clients.moves import api_key_move_to_m2m_app

pytestmark = pytest.mark.django_db

SCOPES = ("billing:read", "orders:read")


def scope_use(credential_id: str, kind: str, organization_id: int, scope: str, last_used, count: int = 5):
    UsageScope.objects.create(
        organization_id=organization_id,
        kind=kind,
        credential_id=credential_id,
        scope=scope,
        count=count,
        last_used=last_used,
    )


def rows_of(application) -> dict[str, tuple[int, object]]:
    rows = UsageScope.objects.filter(kind="m2m_app", credential_id=application.client_id)
    return {row.scope: (row.count, row.last_used) for row in rows}


def unused(application) -> list[str]:
    return scope_suggestion(
        organization_id=application.organization_id,
        kind="m2m_app",
        credential_id=application.client_id,
        scopes=sorted(SCOPES),
    )["unused"]


def test_the_moved_application_keeps_the_keys_scope_use_and_narrowing_keeps_both(make_key, owner):
    api_key, _ = make_key(name="exporter", scopes=SCOPES)
    monthly, daily = timezone.now() - timedelta(days=25), timezone.now() - timedelta(hours=2)
    scope_use(api_key.key_id, "api_key", api_key.organization_id, "billing:read", monthly, count=1)
    scope_use(api_key.key_id, "api_key", api_key.organization_id, "orders:read", daily, count=900)
    application = api_key_move_to_m2m_app(api_key=api_key, actor=owner).application
    assert rows_of(application) == {"billing:read": (0, monthly), "orders:read": (0, daily)}
    assert unused(application) == []
    with pytest.raises(ValidationError) as nothing:
        credential_scopes_narrow_to_used(credential=application, actor=owner)
    assert nothing.value.code == "nothing_to_narrow"


def test_a_pending_move_gets_the_keys_use_at_the_move_and_since_then_with_its_first_secret(
    organization, owner, admin_user, make_key
):
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    api_key, _ = make_key(name="exporter", scopes=SCOPES)
    before = timezone.now() - timedelta(days=20)
    scope_use(api_key.key_id, "api_key", api_key.organization_id, "orders:read", before)
    move = api_key_move_to_m2m_app(api_key=api_key, actor=owner, justification="switching to OAuth")
    assert rows_of(move.application) == {"orders:read": (0, before)}
    # While the request waits the key keeps working: its monthly run needs billing:read, and
    # orders:read again.
    since = timezone.now() - timedelta(minutes=5)
    scope_use(api_key.key_id, "api_key", api_key.organization_id, "billing:read", since)
    UsageScope.objects.filter(kind="api_key", credential_id=api_key.key_id, scope="orders:read").update(
        last_used=since
    )
    credential_request_approve(request=move.request, actor=admin_user)
    credential_secret_issue(credential=move.application, actor=owner)
    assert rows_of(move.application) == {"billing:read": (0, since), "orders:read": (0, since)}


def test_the_carry_over_never_moves_a_newer_use_back(organization, owner, make_key):
    """Run again (the first secret of a pending move), the copy keeps the application's own later use."""
    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    api_key, _ = make_key(name="exporter", scopes=SCOPES)
    old = timezone.now() - timedelta(days=3)
    scope_use(api_key.key_id, "api_key", api_key.organization_id, "orders:read", old)
    application = api_key_move_to_m2m_app(api_key=api_key, actor=owner).application
    newer = timezone.now() - timedelta(minutes=1)
    UsageScope.objects.filter(kind="m2m_app", credential_id=application.client_id).update(
        count=7, last_used=newer
    )
    scope_use_carry_over(
        organization_id=application.organization_id,
        from_kind="api_key",
        from_ref=api_key.key_id,
        to_kind="m2m_app",
        to_ref=application.client_id,
    )
    assert rows_of(application) == {"orders:read": (7, newer)}


def test_a_moved_successor_keeps_the_use_the_rotation_carried_over(make_key, owner):
    old, _ = make_key(name="exporter", scopes=SCOPES)
    monthly = timezone.now() - timedelta(days=27)
    scope_use(old.key_id, "api_key", old.organization_id, "billing:read", monthly)
    successor, _ = api_key_rotate(api_key=old, actor=owner, overlap=timedelta(hours=1))
    application = api_key_move_to_m2m_app(api_key=successor, actor=owner).application
    assert rows_of(application) == {"billing:read": (0, monthly)}
    assert unused(application) == ["orders:read"]  # never used by any key of the integration
