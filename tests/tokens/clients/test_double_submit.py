"""Every dashboard form that creates a secret creates once: a resend, or two sendings at the same moment."""

from __future__ import annotations

import re
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.test import Client
from django.urls import reverse

from credentials.api_keys.models import ApiKey
from portal.models import AuditEvent, Invitation
from tokens.models import ClientPublicKey, ClientSecret, M2MApplication


@pytest.fixture(autouse=True)
def _catalogue(catalogue):
    """The M2M form's default audience is a registered resource server."""


def _token(client: Client, url: str) -> str:
    page = client.get(url)
    return re.search(r'name="submission" value="([^"]+)"', page.content.decode()).group(1)


def _forms(app_id: int | None = None) -> dict:
    """Each form: its URL, its data, and how many rows of what it creates exist."""
    return {
        "api_key": (
            reverse("org-api-key-create", args=["acme"]),
            {
                "name": "billing export",
                "scopes": ["orders:read"],
                "environment": "live",
                "expires_in_days": "90",
            },
            lambda: ApiKey.objects.count(),
        ),
        "m2m_app": (
            reverse("org-app-create", kwargs={"org_slug": "acme"}),
            {
                "name": "Reporting job",
                "scopes": ["orders:read"],
                "audiences": "https://reports.example.com\n",
                "token_lifetime": "600",
            },
            lambda: M2MApplication.objects.count(),
        ),
        "client_secret": (
            reverse("org-app-secret-rotate", kwargs={"org_slug": "acme", "app_id": app_id or 0}),
            {"overlap_hours": "24"},
            lambda: ClientSecret.objects.count(),
        ),
    }


def _detail_url(app) -> str:
    return reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})


def _send(client: Client, name: str, app, owner) -> tuple[str, dict, callable]:
    url, data, count = _forms(app.application.pk if app else None)[name]
    data = {**data, "owner": owner.pk}
    page = (
        reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk}) if app else url
    )
    return url, {**data, "submission": _token(client, page)}, count


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["api_key", "m2m_app", "client_secret"])
def test_sending_a_form_again_shows_no_second_secret(name, owner_client, owner, scopes, make_app):
    app = make_app() if name == "client_secret" else None
    url, data, count = _send(owner_client, name, app, owner)
    before = count()
    first = owner_client.post(url, data)
    assert first.status_code in (200, 201) and "no-store" in first["Cache-Control"]
    again = owner_client.post(url, data)
    assert again.status_code == 302  # to the credential's page, with a message: never a second secret
    assert count() == before + 1


@pytest.mark.django_db
def test_a_refused_sending_can_be_corrected_and_sent_again(owner_client, owner, scopes):
    url, data, count = _send(owner_client, "m2m_app", None, owner)
    refused = owner_client.post(url, {**data, "token_lifetime": "5"})
    assert refused.status_code == 400 and count() == 0
    assert owner_client.post(url, data).status_code == 201 and count() == 1


@pytest.mark.django_db
def test_a_public_key_sent_twice_is_registered_once(owner_client, owner, scopes, make_app):
    app = make_app(auth_method="private_key_jwt", public_key=_public_pem())
    url = reverse("org-app-key-add", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    page = reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    data = {
        "public_key": _public_pem(),
        "algorithm": "",
        "overlap_hours": "",
        "submission": _token(owner_client, page),
    }
    before = ClientPublicKey.objects.count()
    first = owner_client.post(url, data)
    again = owner_client.post(url, data)
    assert first.status_code == 302 and again.status_code == 302
    assert ClientPublicKey.objects.count() == before + 1


def _public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _at_once(client: Client, url: str, data: dict, times: int = 2) -> list[int]:
    """Post the same data from `times` threads sharing the client's session, all at the same moment."""
    barrier = threading.Barrier(times)
    statuses: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        twin = Client()
        twin.cookies = client.cookies
        try:
            barrier.wait(timeout=10)
            status = twin.post(url, data).status_code
        finally:
            connection.close()
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(statuses)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["api_key", "m2m_app", "client_secret"])
def test_two_sendings_at_once_create_one_secret(
    require_postgres, name, owner_client, owner, scopes, make_app
):
    app = make_app() if name == "client_secret" else None
    url, data, count = _send(owner_client, name, app, owner)
    before = count()
    statuses = _at_once(owner_client, url, data)
    assert count() == before + 1
    assert statuses[-1] == 302 and statuses[0] in (200, 201)  # one reveal, one "already sent"
    assert AuditEvent.objects.filter(action__regex=r"\.(created|secret_rotated)$").count() >= 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_invitations_at_once_invite_once(require_postgres, owner_client):
    url = reverse("org-invite", args=["acme"])
    statuses = _at_once(owner_client, url, {"email": "new@acme.test", "role": "member"})
    # The database's one-open-invitation-per-address rule answers the second with a form error.
    assert statuses == [302, 400]
    assert Invitation.objects.filter(email="new@acme.test").count() == 1
