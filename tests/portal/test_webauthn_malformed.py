"""A WebAuthn credential of the wrong shape is refused like a wrong one ("Incorrect code"), never a 500.

allauth's forms turn only some of python-fido2's parsing errors into a form error; the portal's
(portal.forms, settings.MFA_FORMS) turn every one. The passkey sign-in takes posts from anyone.
"""

from __future__ import annotations

import json

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse
from fido2 import cbor
from fido2.utils import websafe_encode

from tests.factories import enrol_totp
from tests.portal.test_account_security import make_stale, password_step, signed_in

pytestmark = pytest.mark.django_db

#: Authenticator data (RP id hash, flags, counter) whose flags announce extensions it then lacks;
#: with a CBOR head promising two more bytes that never come.
_NO_EXTENSIONS = b"\0" * 32 + b"\x80" + b"\0" * 4
_TRUNCATED_EXTENSIONS = _NO_EXTENSIONS + b"\x19"


def _assertion(authenticator_data: bytes) -> dict:
    client_data = b'{"type":"webauthn.get","challenge":"AAAA","origin":"http://testserver"}'
    return {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {
            "clientDataJSON": websafe_encode(client_data),
            "authenticatorData": websafe_encode(authenticator_data),
            "signature": "AAAA",
        },
    }


def _registration(authenticator_data: bytes) -> dict:
    client_data = b'{"type":"webauthn.create","challenge":"AAAA","origin":"http://testserver"}'
    attestation = cbor.encode({"fmt": "none", "attStmt": {}, "authData": authenticator_data})
    return {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {
            "clientDataJSON": websafe_encode(client_data),
            "attestationObject": websafe_encode(attestation),
        },
    }


# Each reaches python-fido2 and fails there differently: KeyError, a bad base64 ValueError, IndexError,
# struct.error.
MALFORMED_ASSERTIONS = [
    {"id": "x"},
    {"id": 1},
    {"id": "x", "rawId": "x", "type": "public-key"},
    _assertion(_NO_EXTENSIONS),
    _assertion(_TRUNCATED_EXTENSIONS),
]
MALFORMED_REGISTRATIONS = [
    {"id": "x"},
    {"id": "x", "rawId": "x", "type": "public-key"},
    _registration(_NO_EXTENSIONS),
    _registration(_TRUNCATED_EXTENSIONS),
]


def _signed_in(user) -> Client:
    client = Client(raise_request_exception=False)
    password_step(client, user.email)
    return client


@pytest.mark.parametrize("credential", MALFORMED_ASSERTIONS)
def test_passkey_sign_in_refuses_a_malformed_credential(member, credential):
    anonymous = Client(raise_request_exception=False)
    response = anonymous.post(reverse("mfa_login_webauthn"), {"credential": json.dumps(credential)})
    assert response.status_code == 302 and response["Location"] == reverse("account_login")
    assert not signed_in(anonymous)


@pytest.mark.parametrize("credential", MALFORMED_REGISTRATIONS)
def test_adding_a_security_key_refuses_a_malformed_credential(member, credential):
    client = _signed_in(member)
    response = client.post(reverse("mfa_add_webauthn"), {"name": "key", "credential": json.dumps(credential)})
    assert response.status_code == 200
    assert "Incorrect code." in response.content.decode()
    assert not Authenticator.objects.filter(user=member, type=Authenticator.Type.WEBAUTHN).exists()


@pytest.mark.parametrize("credential", MALFORMED_ASSERTIONS)
def test_the_second_factor_at_sign_in_refuses_a_malformed_credential(member, credential):
    enrol_totp(member)
    client = Client(raise_request_exception=False)
    password_step(client, member.email)  # the second factor's page comes next
    response = client.post(reverse("mfa_authenticate"), {"credential": json.dumps(credential)})
    assert response.status_code == 200
    assert not signed_in(client)


@pytest.mark.parametrize("credential", MALFORMED_ASSERTIONS)
def test_step_up_with_a_security_key_refuses_a_malformed_credential(member, credential):
    # A security key on the account: allauth's step-up page for it answers only then.
    Authenticator.objects.create(user=member, type=Authenticator.Type.WEBAUTHN, data={"name": "Laptop"})
    client = Client(raise_request_exception=False)
    client.force_login(member)
    make_stale(client)
    response = client.post(reverse("mfa_reauthenticate_webauthn"), {"credential": json.dumps(credential)})
    assert response.status_code == 302
    page = client.get(reverse("org-api-key-create", args=["acme"]))
    assert page.status_code == 302 and "reauthenticate" in page["Location"]  # still not stepped up
