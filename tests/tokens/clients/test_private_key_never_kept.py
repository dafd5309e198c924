"""A private key pasted where a public one belongs is never kept: not in the session, not in a page."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from jwt.algorithms import RSAAlgorithm

from tests.portal.test_account_security import make_stale, password_step
from tests.support.pem import private_pem, public_pem
from tokens.clients.services import m2m_app_create
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def keyed_app(organization, owner, scopes) -> M2MApplication:
    application, _none = m2m_app_create(
        organization=organization,
        name="Keyed service",
        owner=owner,
        actor=owner,
        auth_method="private_key_jwt",
        public_key=public_pem(ec.generate_private_key(ec.SECP256R1())),
    )
    return application


def test_a_private_key_pasted_with_a_stale_session_is_not_kept_in_the_session_nor_echoed(owner, keyed_app):
    """docs/m2m.md: a pasted private key is refused and never echoed back; the BRIEF: never stored.

    When the key-add form needs a fresh sign-in, `portal.drafts.draft_stash` keeps the POST's
    entries in the session (the `public_key` name is not one it recognises as secret), and the
    page the user returns to renders them in a JSON script element.
    """
    private = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    marker = private.splitlines()[1][:40]  # a line of the key body
    client = Client()
    password_step(client, owner.email)
    make_stale(client)
    detail = reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": keyed_app.pk})
    response = client.post(
        reverse("org-app-key-add", kwargs={"org_slug": "acme", "app_id": keyed_app.pk}),
        {"public_key": private},
        HTTP_REFERER="http://testserver" + detail,
    )
    assert response.status_code == 302
    assert keyed_app.public_keys.count() == 1
    stored = [s.get_decoded() for s in Session.objects.all()]
    kept = any(marker in json.dumps(data) for data in stored)
    # And the page the user comes back to after re-authenticating does not show it.
    next_url = parse_qs(urlsplit(response["Location"]).query).get("next", [detail])[0]
    page = client.get(next_url)
    assert marker not in page.content.decode(), "the private key is rendered into the page"
    assert not kept, "the private key was kept in the session"


def test_a_private_key_pasted_in_the_create_form_with_a_stale_session_is_not_kept(owner, scopes):
    """Same as above for *New application* (m2m_app.create asks for step-up too, docs/security.md)."""
    private = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    marker = private.splitlines()[1][:40]
    client = Client()
    password_step(client, owner.email)
    make_stale(client)
    create = reverse("org-app-create", kwargs={"org_slug": "acme"})
    response = client.post(
        create,
        {
            "name": "Keyed",
            "owner": owner.pk,
            "token_lifetime": 900,
            "auth_method": "private_key_jwt",
            "public_key": private,
        },
        HTTP_REFERER="http://testserver" + create,
    )
    assert response.status_code == 302
    assert not M2MApplication.objects.exists()
    stored = [s.get_decoded() for s in Session.objects.all()]
    assert not any(marker in json.dumps(data) for data in stored), "the private key was kept in the session"


def _private_jwk() -> dict:
    return RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True)


def _pkcs8_body() -> str:
    pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return "\n".join(line for line in pem.splitlines() if not line.startswith("-----"))


@pytest.mark.parametrize(
    "make_text",
    [
        lambda: json.dumps([_private_jwk()]),
        lambda: json.dumps({"key": _private_jwk()}),
        _pkcs8_body,
    ],
    ids=["jwk-in-a-list", "jwk-wrapped", "pkcs8-without-armor"],
)
def test_private_key_material_in_any_shape_is_not_echoed_by_the_key_form(owner_client, keyed_app, make_text):
    """docs/m2m.md: a pasted private key "is refused with a form error and never echoed back".
    `looks_private` only recognises `PRIVATE KEY` armor and a top-level (or `keys`) JWK object, so
    these refused inputs are rendered back into the textarea, private exponent included."""
    text = make_text()
    secret_part = (
        json.loads(text)[0]["d"]
        if text.startswith("[")
        else (json.loads(text)["key"]["d"] if text.startswith("{") else text.splitlines()[3])
    )
    response = owner_client.post(
        reverse("org-app-key-add", kwargs={"org_slug": "acme", "app_id": keyed_app.pk}), {"public_key": text}
    )
    assert response.status_code == 400
    assert keyed_app.public_keys.count() == 1
    assert secret_part not in response.content.decode()
