"""No client secret, signing private key or access token in the database, the logs or the admin."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.factories import UserFactory, enrol_totp
from tests.tokens.conftest import basic
from tokens.clients.services import client_secret_rotate
from tokens.models import SigningKey
from tokens.signing import keys
from tokens.signing.services import signing_key_rotate


def _private_material() -> list[str]:
    """Return strings that would betray a signing private key: PEM bodies and JWK private members."""
    found = []
    for key in SigningKey.objects.all():
        private = keys.decrypt_private_key(key)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        found.extend(line for line in pem.splitlines()[1:-1][:3])
        algorithm = RSAAlgorithm if key.algorithm == "RS256" else ECAlgorithm
        jwk = algorithm.to_jwk(private, as_dict=True)
        found.extend(jwk[member] for member in ("d", "p", "q") if member in jwk)
    return found


@pytest.mark.django_db(transaction=True)
def test_no_secret_key_or_token_in_db_logs_or_admin(caplog, owner, app, make_app):
    caplog.set_level(logging.DEBUG)
    secrets_issued = [app.client_secret]
    tokens_issued = []
    client = Client()
    for n in range(2):
        response = client.post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(app.client_id, secrets_issued[-1]),
        )
        tokens_issued.append(json.loads(response.content)["access_token"])
        client.post(
            "/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": app.client_id,
                "client_secret": secrets_issued[-1],
            },
        )
        client.post(
            "/oauth/token",
            {"grant_type": "client_credentials"},
            HTTP_AUTHORIZATION=basic(app.client_id, "ips_x" + secrets_issued[-1][5:]),
        )
        client.post(
            "/oauth/introspect",
            {"token": tokens_issued[-1]},
            HTTP_AUTHORIZATION=basic(app.client_id, secrets_issued[-1]),
        )
        client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {tokens_issued[-1]}")
        _secret, plaintext = client_secret_rotate(
            application=app.application, overlap=timedelta(hours=1), actor=owner
        )
        secrets_issued.append(plaintext)
    client.post(
        "/oauth/revoke",
        {"token": tokens_issued[0]},
        HTTP_AUTHORIZATION=basic(app.client_id, secrets_issued[-1]),
    )
    signing_key_rotate(actor=None, algorithm="ES256")
    secrets_issued.append(make_app(name="Second").client_secret)
    call_command(
        "create_m2m_app", org="acme", name="CLI app", owner=owner.email, json=True, stdout=io.StringIO()
    )

    forbidden = secrets_issued + tokens_issued + _private_material()
    # A token's signature alone would also betray it.
    forbidden += [token.rsplit(".", 1)[1] for token in tokens_issued]

    # Database dump.
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    # Logs.
    logs = "\n".join(record.getMessage() + str(record.args) for record in caplog.records)
    # Admin pages.
    staff = UserFactory(email="staff@portal.test", is_staff=True, is_superuser=True)
    enrol_totp(staff)  # staff use the admin only with a second factor
    admin = Client()
    admin.force_login(staff)
    pages = []
    for model in ("m2mapplication", "clientsecret", "signingkey"):
        changelist = admin.get(reverse(f"admin:tokens_{model}_changelist"))
        assert changelist.status_code == 200
        pages.append(changelist.content.decode())
    pages.append(
        admin.get(reverse("admin:tokens_m2mapplication_change", args=[app.application.pk])).content.decode()
    )
    for key in SigningKey.objects.all():
        page = admin.get(reverse("admin:tokens_signingkey_change", args=[key.pk])).content.decode()
        assert "encrypted" not in page.lower()
        pages.append(page)
    for secret in app.application.secrets.all():
        pages.append(
            admin.get(reverse("admin:tokens_clientsecret_change", args=[secret.pk])).content.decode()
        )
    assert any(app.application.secrets.first().hint in page for page in pages)

    for value in forbidden:
        assert value not in dump.getvalue(), "secret material in the database dump"
        assert value not in logs, "secret material in the logs"
        for page in pages:
            assert value not in page, "secret material in the admin"
