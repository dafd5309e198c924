"""purge_revoked_tokens keeps live revocations and drops expired ones."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tokens.clients.services import m2m_app_create
from tokens.models import RevokedToken


@pytest.mark.django_db
def test_purge_drops_only_expired_entries(organization, owner):
    application, _secret = m2m_app_create(organization=organization, name="svc", owner=owner, actor=owner)
    now = timezone.now()
    RevokedToken.objects.create(
        jti="expired-one", application=application, expires_at=now - timedelta(seconds=1)
    )
    RevokedToken.objects.create(
        jti="still-live", application=application, expires_at=now + timedelta(minutes=5)
    )
    out = StringIO()
    call_command("purge_revoked_tokens", stdout=out)
    assert "Purged 1 expired revocation entry." in out.getvalue()
    assert list(RevokedToken.objects.values_list("jti", flat=True)) == ["still-live"]
