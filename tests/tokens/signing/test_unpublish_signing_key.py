"""A leaked signing key: `rotate_signing_key --unpublish-previous` stops its tokens validating."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from portal.models import AuditEvent
from tests.tokens.conftest import request_token
from tokens.models import SigningKey
from tokens.signing import keys
from tokens.signing.services import signing_key_ensure, signing_key_unpublish

pytestmark = pytest.mark.django_db


def test_unpublish_previous_withdraws_the_old_key_and_its_tokens(
    client, app, django_capture_on_commit_callbacks
):
    old_token = request_token(client, app).json()["access_token"]
    old_kid = SigningKey.objects.get(status="active").kid
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {old_token}").status_code == 200

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("rotate_signing_key", "--unpublish-previous", stdout=out)
    assert f"Withdrew key {old_kid}" in out.getvalue()

    published = [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]]
    assert old_kid not in published and len(published) == 1
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {old_token}").status_code == 401
    new_token = request_token(client, app).json()["access_token"]
    assert client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {new_token}").status_code == 200
    assert AuditEvent.objects.filter(action="tokens.signing_key.unpublished", extra__kid=old_kid).count() == 1


def test_the_active_key_cannot_be_unpublished():
    key = signing_key_ensure()
    with pytest.raises(ValidationError):
        signing_key_unpublish(key=key, actor=None)
    keys.forget_loaded_key()
