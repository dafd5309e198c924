"""`manage.py rotate_client_secret`: a new secret printed once; the old ones stop after the overlap."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from portal.models import AuditEvent
from tokens.clients.services import m2m_app_create
from tokens.models import ClientSecret
from tokens.protocol.oauth import authenticate_client_credentials

pytestmark = pytest.mark.django_db


def test_rotate_client_secret_command_prints_the_new_secret_once(organization, owner):
    application, old = m2m_app_create(
        organization=organization, name="billing", owner=owner, actor=None, scopes=[], audiences=[]
    )
    out = io.StringIO()
    call_command(
        "rotate_client_secret",
        "--client-id",
        application.client_id,
        "--overlap-hours=0",
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["client_id"] == application.client_id
    new = result["client_secret"]
    assert authenticate_client_credentials(application.client_id, new) is not None
    assert authenticate_client_credentials(application.client_id, old) is None  # overlap 0
    # Stored only as a keyed digest.
    assert not ClientSecret.objects.filter(digest__contains=new).exists()
    assert AuditEvent.objects.filter(action="tokens.m2m_app.secret_rotated").count() == 1


def test_rotate_client_secret_command_refuses_an_unknown_client(db):
    with pytest.raises(CommandError, match="No application"):
        call_command("rotate_client_secret", "--client-id", "nope")
