"""A leaked signing key: `rotate_signing_key --unpublish-previous` stops its tokens validating."""

from __future__ import annotations

import io

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from portal.models import AuditEvent
from tests.tokens.conftest import request_token
from tokens.models import SigningKey
from tokens.protocol.selectors import live_access_token
from tokens.signing import keys
from tokens.signing.issuing import ACCESS_TOKEN_TYP, access_token_claims
from tokens.signing.services import signing_key_ensure, signing_key_unpublish
from tokens.verifier import InvalidToken

pytestmark = pytest.mark.django_db


def test_unpublish_previous_withdraws_the_old_key_and_its_tokens(
    client, app, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 0  # one process: nobody else to wait for
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


def test_other_app_servers_stop_signing_with_a_withdrawn_key(app, settings):
    """Another app server (its own per-process key cache) loaded the key before the incident.

    After `rotate_signing_key --unpublish-previous` has returned ("tokens it signed stop
    validating"), that server keeps signing new tokens with the withdrawn — leaked — key for
    up to PORTAL_SIGNING_KEY_REFRESH_SECONDS (twice that with the shared kid hint): the token
    endpoint answered 200 with tokens no verifier accepts. The command waits for them first."""
    settings.PORTAL_SIGNING_KEY_REFRESH_SECONDS = 1  # the command waits 2 s
    other_server = keys._KeyCache()  # noqa: SLF001 - a second process's cache
    leaked = other_server.get(signing_key_ensure)

    call_command("rotate_signing_key", "--unpublish-previous", stdout=io.StringIO())

    signer = other_server.get(signing_key_ensure)  # what that server's next /oauth/token uses
    claims = access_token_claims(
        application=app.application,
        scopes=["orders:read"],
        audience=settings.PORTAL_DEFAULT_AUDIENCE,
        lifetime=900,
        secret_id=app.application.secrets.get().public_id,
    )
    token = jwt.encode(
        claims,
        signer.private_key,
        algorithm=signer.algorithm,
        headers={"typ": ACCESS_TOKEN_TYP, "kid": signer.kid},
    )
    assert signer.kid != leaked.kid, "another app server still signs with the withdrawn key"
    try:
        live_access_token(token, audience=settings.PORTAL_DEFAULT_AUDIENCE)
    except InvalidToken as exc:
        pytest.fail(f"a token issued after the rotation is unusable: {exc.reason}")
