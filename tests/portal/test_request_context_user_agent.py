"""A control character in User-Agent is replaced by U+FFFD where the request context reads the
header (portal.infra.request_context), before any later layer keeps it: a NUL was a 500 on
PostgreSQL when allauth saved the session row or the portal an audit row."""

from __future__ import annotations

import pytest
from allauth.usersessions.models import UserSession
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent
from tests.factories import enrol_totp
from tests.portal.test_account_security import password_step, signed_in

pytestmark = pytest.mark.django_db


@pytest.mark.postgres
def test_a_nul_in_user_agent_signs_in_and_is_kept_replaced(require_postgres, member):
    client = Client(raise_request_exception=False, HTTP_USER_AGENT="bad\x00agent")
    assert password_step(client, member.email).status_code == 302 and signed_in(client)
    assert UserSession.objects.get(user=member).user_agent == "bad\ufffdagent"


@pytest.mark.postgres
def test_a_nul_in_user_agent_at_a_wrong_second_factor_is_audited(require_postgres, member):
    enrol_totp(member)
    client = Client(raise_request_exception=False, HTTP_USER_AGENT="bad\x00agent")
    password_step(client, member.email)
    assert client.post(reverse("mfa_authenticate"), {"code": "000001"}).status_code == 200
    assert AuditEvent.objects.get(action="portal.account.mfa_failed").user_agent == "bad\ufffdagent"


@pytest.mark.parametrize(
    "sent, kept",
    [
        ("a\r\n\x1b[31mb\x7f", "a\ufffd\ufffd\ufffd[31mb\ufffd"),  # a forged log line, an escape sequence
        ("c\x85d\x9be", "c\ufffdd\ufffde"),  # C1 controls
        ("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
        ("Agent\u00a0é ✓", "Agent\u00a0é ✓"),  # not printable (U+00A0), yet no control character
    ],
)
def test_later_layers_read_the_user_agent_with_control_characters_replaced(member, sent, kept):
    client = Client(HTTP_USER_AGENT=sent)
    password_step(client, member.email)
    assert UserSession.objects.get(user=member).user_agent == kept
