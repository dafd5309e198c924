"""Dashboard: create a private_key_jwt application, register, rotate and revoke its public keys."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import Client
from django.urls import reverse
from jwt.algorithms import RSAAlgorithm

from credentials.governance.models import CredentialRequest
from portal.models import AuditEvent
from tests.portal.test_account_security import make_stale, password_step
from tokens.clients.public_keys import parse_public_key
from tokens.clients.services import m2m_app_create
from tokens.models import ClientPublicKey, M2MApplication

pytestmark = pytest.mark.django_db


def _public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _ec_pem() -> str:
    return _public_pem(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def keyed_app(organization, owner, scopes) -> M2MApplication:
    application, _none = m2m_app_create(
        organization=organization,
        name="Keyed service",
        owner=owner,
        actor=owner,
        auth_method="private_key_jwt",
        public_key=_ec_pem(),
    )
    return application


def _detail(app: M2MApplication) -> str:
    return reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.pk})


def _add(client, app: M2MApplication, **data):
    return client.post(reverse("org-app-key-add", kwargs={"org_slug": "acme", "app_id": app.pk}), data)


def test_create_a_private_key_jwt_app_with_its_public_key(owner_client, owner, scopes):
    pem = _ec_pem()
    response = owner_client.post(
        reverse("org-app-create", kwargs={"org_slug": "acme"}),
        {
            "name": "Keyed",
            "owner": owner.pk,
            "scopes": ["orders:read"],
            "token_lifetime": "900",
            "auth_method": "private_key_jwt",
            "public_key": pem,
        },
    )
    application = M2MApplication.objects.get()
    assert response.status_code == 302 and response["Location"] == _detail(application)
    assert application.uses_private_key_jwt and not application.secrets.exists()
    page = owner_client.get(response["Location"]).content.decode()
    kid = parse_public_key(pem)["kid"]
    assert kid in page and "ES256" in page and "It has no secret" in page
    assert "Client secrets" not in page and "Rotate secret" not in page
    assert 'PrivateKeyJWT(token_url, alg="ES256")' in page and "ECKey.import_key" in page
    assert application.client_id in page


def test_the_create_form_refuses_a_private_key(owner_client, owner, scopes):
    private = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    response = owner_client.post(
        reverse("org-app-create", kwargs={"org_slug": "acme"}),
        {
            "name": "Keyed",
            "owner": owner.pk,
            "token_lifetime": "900",
            "auth_method": "private_key_jwt",
            "public_key": private.decode(),
        },
    )
    assert response.status_code == 400
    assert "This is a private key" in response.content.decode()
    assert not M2MApplication.objects.exists()
    assert private.decode() not in response.content.decode()


def test_a_secret_app_takes_no_public_key(owner_client, owner, scopes):
    response = owner_client.post(
        reverse("org-app-create", kwargs={"org_slug": "acme"}),
        {"name": "S", "owner": owner.pk, "token_lifetime": "900", "public_key": _ec_pem()},
    )
    assert response.status_code == 400 and not M2MApplication.objects.exists()


def test_register_a_pem_key_and_see_it_listed_with_its_kid(owner_client, keyed_app):
    pem = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    response = _add(owner_client, keyed_app, public_key=pem, algorithm="PS256")
    assert response.status_code == 302
    key = keyed_app.public_keys.get(algorithm="PS256")
    page = owner_client.get(_detail(keyed_app)).content.decode()
    assert key.kid in page and "PS256" in page
    event = AuditEvent.objects.get(action="tokens.m2m_app.public_key_added", extra__kid=key.kid)
    assert event.actor.email == "owner@acme.test"


def test_a_private_jwk_is_a_form_error(owner_client, keyed_app):
    private_jwk = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    response = _add(owner_client, keyed_app, public_key=private_jwk)
    assert response.status_code == 400
    assert "This is a private key" in response.content.decode()
    assert json.loads(private_jwk)["d"] not in response.content.decode()
    assert keyed_app.public_keys.count() == 1


@pytest.mark.parametrize(
    "text, message",
    [
        # Deeper than Python's JSON decoder recurses: it used to be a RecursionError (500).
        ('{"kty": "RSA", "x": ' + "[" * 4000 + "]" * 4000 + "}", "This is not valid JSON."),
        ('{"kty": "EC", "crv": "P-256", "x": "\\u0000", "y": 1}', "This JWK is not a usable public key."),
        ("-----BEGIN PUBLIC KEY-----\n" + "\u00e9" * 100 + "\n-----END PUBLIC KEY-----", "This PEM block"),
        ("{" * 1000, "This is not valid JSON."),
    ],
    ids=["deep-json", "odd-members", "non-ascii-pem", "unclosed"],
)
def test_hostile_key_text_is_a_form_error_not_500(owner_client, keyed_app, text, message):
    response = _add(owner_client, keyed_app, public_key=text)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert keyed_app.public_keys.count() == 1


def test_a_third_live_key_is_a_form_error(owner_client, keyed_app):
    assert _add(owner_client, keyed_app, public_key=_ec_pem()).status_code == 302
    response = _add(owner_client, keyed_app, public_key=_ec_pem())
    assert response.status_code == 400
    assert "already has 2 live keys" in response.content.decode()


def test_rotation_with_overlap_from_the_page(owner_client, keyed_app):
    old = keyed_app.public_keys.get()
    assert _add(owner_client, keyed_app, public_key=_ec_pem(), overlap_hours="1").status_code == 302
    old.refresh_from_db()
    assert old.state == "expiring"
    assert "Rotated" in owner_client.get(_detail(keyed_app)).content.decode()


def test_revoke_a_key_from_the_page(owner_client, keyed_app):
    key = keyed_app.public_keys.get()
    url = reverse(
        "org-app-key-revoke", kwargs={"org_slug": "acme", "app_id": keyed_app.pk, "public_key_id": key.pk}
    )
    assert owner_client.post(url).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="tokens.m2m_app.public_key_revoked").count() == 1


def test_a_plain_member_cannot_add_or_revoke_keys(member_client, keyed_app):
    key = keyed_app.public_keys.get()
    assert _add(member_client, keyed_app, public_key=_ec_pem()).status_code == 403
    url = reverse(
        "org-app-key-revoke", kwargs={"org_slug": "acme", "app_id": keyed_app.pk, "public_key_id": key.pk}
    )
    assert member_client.post(url).status_code == 403
    page = member_client.get(_detail(keyed_app)).content.decode()
    assert key.kid in page and "Register key" not in page


def test_a_key_of_another_app_is_404(owner_client, keyed_app, organization, owner):
    other, _none = m2m_app_create(
        organization=organization, name="Other", owner=owner, actor=owner, auth_method="private_key_jwt"
    )
    key = keyed_app.public_keys.get()
    url = reverse(
        "org-app-key-revoke", kwargs={"org_slug": "acme", "app_id": other.pk, "public_key_id": key.pk}
    )
    assert owner_client.post(url).status_code == 404


def test_adding_and_revoking_keys_ask_for_step_up(owner, keyed_app):
    client = Client()
    password_step(client, owner.email)
    make_stale(client)
    key = keyed_app.public_keys.get()
    for url, data in (
        (
            reverse("org-app-key-add", kwargs={"org_slug": "acme", "app_id": keyed_app.pk}),
            {"public_key": _ec_pem()},
        ),
        (
            reverse(
                "org-app-key-revoke",
                kwargs={"org_slug": "acme", "app_id": keyed_app.pk, "public_key_id": key.pk},
            ),
            {},
        ),
    ):
        response = client.post(url, data)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert keyed_app.public_keys.count() == 1 and keyed_app.public_keys.get().revoked_at is None


def test_the_list_counts_keys_for_keyed_apps(owner_client, keyed_app, make_app):
    make_app(name="Secret service")
    page = owner_client.get(reverse("org-apps", kwargs={"org_slug": "acme"})).content.decode()
    assert "1 key" in page and "1 secret" in page


def test_a_requested_keyed_app_is_registered_by_its_owner_after_approval(
    organization, owner, member, member_client, owner_client, scopes
):
    from credentials.governance.approvals import credential_request_approve
    from credentials.governance.org_policy import policy_update

    policy_update(organization=organization, actor=owner, approve_new_m2m_apps=True)
    create = reverse("org-app-create", kwargs={"org_slug": "acme"})
    base = {
        "name": "Requested",
        "owner": member.pk,
        "token_lifetime": "900",
        "auth_method": "private_key_jwt",
    }
    # A key cannot come with the request: it is registered after approval.
    response = member_client.post(create, {**base, "justification": "needed", "public_key": _ec_pem()})
    assert response.status_code == 400 and not M2MApplication.objects.exists()
    response = member_client.post(create, {**base, "justification": "needed"})
    application = M2MApplication.objects.get()
    assert response.status_code == 302 and application.status == "pending"
    assert "Register key" not in member_client.get(_detail(application)).content.decode()
    credential_request_approve(
        request=CredentialRequest.objects.get(kind="m2m_app", object_id=application.pk), actor=owner
    )
    page = member_client.get(_detail(application)).content.decode()
    assert "Register its public key below" in page and "Generate the secret" not in page
    assert _add(member_client, application, public_key=_ec_pem()).status_code == 302
    application.refresh_from_db()
    assert application.status == "active"
    assert ClientPublicKey.objects.filter(application=application).count() == 1


def test_the_page_of_a_keyed_app_costs_a_bounded_number_of_queries(
    owner_client, keyed_app, django_assert_max_num_queries
):
    from tokens.clients.services import client_public_key_add, client_public_key_revoke

    owner = keyed_app.owner
    client_public_key_revoke(public_key=keyed_app.public_keys.get(), actor=owner)
    for _ in range(2):
        client_public_key_add(application=keyed_app, jwk_or_pem=_ec_pem(), actor=owner)
    owner_client.get(_detail(keyed_app))  # warm the session and policy rows
    with django_assert_max_num_queries(20) as captured:
        response = owner_client.get(_detail(keyed_app))
    assert response.status_code == 200
    # One query for the keys, whatever their number (no query per key row).
    key_queries = [q for q in captured.captured_queries if "tokens_clientpublickey" in q["sql"]]
    assert len(key_queries) == 1
