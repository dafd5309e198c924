"""Changing PORTAL_SIGNING_KEY_ENCRYPTION_KEY as docs/operations.md says stops nothing (issue 14, item 5).

Every secret stored encrypted — TOTP secrets and recovery-code seeds, webhook signing secrets,
JWT signing keys — opens under the current or a previous key while the runbook runs;
`reencrypt_secrets` moves them all, and afterwards the previous key can be dropped.
"""

from __future__ import annotations

import base64
import io
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from credentials.webhooks.models import WebhookEndpoint
from credentials.webhooks.services import webhook_endpoint_create
from credentials.webhooks.signing import decrypt_secret
from portal.account_security.adapters import MFA_CIPHER
from portal.models import AuditEvent
from tests.factories import enrol_totp
from tests.portal.test_account_security import make_stale, password_step, signed_in, totp_code
from tokens.clients.services import m2m_app_create
from tokens.models import SigningKey
from tokens.signing import keys
from tokens.signing.services import signing_key_ensure

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _under_the_old_key(settings):
    settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY = OLD
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = []
    settings.PORTAL_WEBHOOK_ALLOW_INSECURE_LOCALHOST = True
    keys.forget_loaded_key()
    yield
    keys.forget_loaded_key()


def _rotate(settings, *, current: str, previous: list[str]) -> None:
    """Change the environment of every app server (and reload them: drop the loaded signing key)."""
    settings.PORTAL_SIGNING_KEY_ENCRYPTION_KEY = current
    settings.PORTAL_OLD_SIGNING_KEY_ENCRYPTION_KEYS = previous
    keys.forget_loaded_key()


def _sign_in_with_totp(email: str, secret: str, *, at: float) -> Client:
    client = Client(raise_request_exception=False)
    response = password_step(client, email)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    with override_settings(MFA_TOTP_TOLERANCE=2):
        response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret, at=at)})
    assert response.status_code == 302, response.status_code
    assert signed_in(client)
    return client


def _step_up_with_totp(client: Client, secret: str, *, at: float) -> None:
    url = reverse("org-api-key-create", args=["acme"])
    make_stale(client)
    asked = client.get(url)
    assert asked.status_code == 302 and asked["Location"].startswith(reverse("mfa_reauthenticate"))
    with override_settings(MFA_TOTP_TOLERANCE=2):
        done = client.post(asked["Location"], {"code": totp_code(secret, at=at)})
    assert done.status_code == 302 and done["Location"] == url
    assert client.get(url).status_code == 200


def _token(client_id: str, client_secret: str) -> int:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    response = Client(raise_request_exception=False).post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    return response.status_code


def _recovery_codes(user) -> list[str]:
    return RecoveryCodes(Authenticator.objects.get(user=user, type="recovery_codes")).get_unused_codes()


def test_the_runbook_keeps_mfa_webhooks_and_tokens_working_then_the_old_key_can_go(
    settings, organization, owner
):
    # Everything encrypted under the old key: an authenticator app, recovery codes, a webhook
    # endpoint's secret, the JWT signing key (through an M2M application's first token).
    secret = enrol_totp(owner)
    RecoveryCodes.activate(owner)
    codes = _recovery_codes(owner)
    endpoint, webhook_secret = webhook_endpoint_create(
        organization=organization, url="http://127.0.0.1:9/hook", event_types=["created"], actor=owner
    )
    signing_key_ensure()
    application, client_secret = m2m_app_create(
        organization=organization, name="svc", owner=owner, actor=owner
    )
    assert _token(application.client_id, client_secret) == 200

    # Runbook step 2: the new key is current, the old one listed as previous. Nothing breaks.
    _rotate(settings, current=NEW, previous=[OLD])
    # (Each code once: a used code is refused as a replay, so each step takes another time step.)
    client = _sign_in_with_totp(owner.email, secret, at=time.time() - 60)
    _step_up_with_totp(client, secret, at=time.time() - 30)
    assert _recovery_codes(owner) == codes
    assert decrypt_secret(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_ciphertext) == webhook_secret
    assert _token(application.client_id, client_secret) == 200

    # Runbook step 3: one command moves every encrypted secret; running it again moves nothing.
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    printed = out.getvalue()
    assert "Re-encrypted 2 MFA authenticator(s)" in printed  # the app and the recovery codes
    assert "Re-encrypted 1 webhook endpoint secret(s)" in printed
    assert "Re-encrypted 1 signing key(s)" in printed
    out = io.StringIO()
    call_command("reencrypt_secrets", stdout=out)
    assert out.getvalue().count("Re-encrypted 0 ") == 3
    events = AuditEvent.objects.filter(
        action__in=[
            "portal.mfa.secrets_reencrypted",
            "credentials.webhook.secrets_reencrypted",
            "tokens.signing_key.reencrypted",
        ]
    )
    assert events.count() == 3
    for event in events:
        text = str(event.extra) + event.target_label
        assert OLD not in text and NEW not in text and secret not in text and webhook_secret not in text

    # Runbook step 4: the old key is gone; everything still opens under the new key alone.
    _rotate(settings, current=NEW, previous=[])
    client = _sign_in_with_totp(owner.email, secret, at=time.time())
    _step_up_with_totp(client, secret, at=time.time() + 30)
    assert _recovery_codes(owner) == codes
    assert decrypt_secret(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_ciphertext) == webhook_secret
    assert _token(application.client_id, client_secret) == 200
    # And the stored ciphertexts really are under the new key only.
    stored = Authenticator.objects.get(user=owner, type="totp").data["secret"]
    _rotate(settings, current=OLD, previous=[])
    with pytest.raises(InvalidToken):
        MFA_CIPHER.decrypt(stored.encode())


def test_a_secret_no_given_key_opens_changes_nothing_anywhere(settings, organization, owner):
    enrol_totp(owner)
    signing_key_ensure()
    before_totp = Authenticator.objects.get(user=owner).data["secret"]
    before_key = bytes(SigningKey.objects.get().encrypted_private_key)
    # The operator lists the wrong previous key: the command refuses and nothing moves, not even
    # the secrets it could have opened (all or nothing across every kind).
    _rotate(settings, current=NEW, previous=[])
    wrong = Fernet.generate_key().decode()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("reencrypt_secrets", f"--old-key={wrong}")
    with pytest.raises(CommandError, match="not a Fernet key"):
        call_command("reencrypt_secrets", "--old-key=not-a-key")
    with pytest.raises(CommandError, match="--old-key"):
        call_command("reencrypt_secrets")
    assert Authenticator.objects.get(user=owner).data["secret"] == before_totp
    assert bytes(SigningKey.objects.get().encrypted_private_key) == before_key
    assert not AuditEvent.objects.filter(action__endswith="reencrypted").exists()


@pytest.mark.parametrize("command", ["reencrypt_signing_keys", "reencrypt_webhook_secrets"])
def test_the_former_command_names_move_every_secret_too(settings, organization, owner, command):
    secret = enrol_totp(owner)
    signing_key_ensure()
    _rotate(settings, current=NEW, previous=[OLD])
    out = io.StringIO()
    call_command(command, stdout=out)
    assert "Re-encrypted 1 MFA authenticator(s)" in out.getvalue()
    assert "Re-encrypted 1 signing key(s)" in out.getvalue()
    _rotate(settings, current=NEW, previous=[])
    _sign_in_with_totp(owner.email, secret, at=time.time())
