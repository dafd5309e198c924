"""A credential's name may not hold characters that hide or reorder text (credentials.names).

What was wrong: every form and REST serializer that takes a credential's name accepted them, so
`invoice<U+202E>gpj.exe` was saved and shown in the inventory, the approvals queue and the audit
log as "invoiceexe.jpg". Control characters, the bidirectional embeddings, overrides and isolates
and the zero-width space, word joiner and BOM are now a field error under `name` (code
`invalid_characters`) naming each character; the zero-width joiners and the direction marks,
which scripts and emoji need, stay allowed.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from credentials.api_keys.serializers import ApiKeyCreateSerializer, ApiKeyUpdateSerializer
from credentials.forms import CredentialEditForm
from credentials.names import validate_credential_name
from portal.models import AuditEvent
from tokens.clients.move_api import MoveRequestSerializer
from tokens.clients.serializers import M2MAppCreateSerializer, M2MAppUpdateSerializer

pytestmark = pytest.mark.django_db

DISGUISED = "invoice\u202egpj.exe"  # shown as "invoiceexe.jpg"

REFUSED = {
    "NUL": "a\x00b",
    "tab": "a\tb",
    "newline": "a\nb",
    "escape": "a\x1b[31mb",
    "DEL": "a\x7fb",
    "C1 control": "a\x85b",
    "LRE": "a\u202ab",
    "RLE": "a\u202bb",
    "PDF": "a\u202cb",
    "LRO": "a\u202db",
    "RLO": DISGUISED,
    "LRI": "a\u2066b",
    "RLI": "a\u2067b",
    "FSI": "a\u2068b",
    "PDI": "a\u2069b",
    "zero-width space": "a\u200bb",
    "word joiner": "a\u2060b",
    "BOM": "\ufeffbilling",
}

ALLOWED = {
    "ZWJ emoji": "\U0001f469\u200d\U0001f4bb deploy bot",
    "ZWNJ Persian": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "LRM": "billing \u200e(EU)",
    "RLM": "\u05e9\u05dc\u05d5\u05dd\u200f 2",
    "plain": "billing export (v2) — nightly",
}


@pytest.mark.parametrize("name", REFUSED.values(), ids=REFUSED.keys())
def test_the_validator_refuses_and_names_the_character(name):
    form = CredentialEditForm(data={"name": name, "description": ""})

    assert not form.is_valid()
    (error,) = form.errors.as_data()["name"]  # one error, a NUL too (not Django's own besides)
    assert error.code == "invalid_characters"
    hidden = next(c for c in name if not c.isprintable() or c in "\u202e\ufeff")
    assert f"U+{ord(hidden):04X}" in form.errors["name"][0]


@pytest.mark.parametrize("name", ALLOWED.values(), ids=ALLOWED.keys())
def test_joiners_and_direction_marks_are_allowed(name):
    validate_credential_name(name)
    assert CredentialEditForm(data={"name": name, "description": ""}).is_valid()


def test_the_error_says_which_character():
    form = CredentialEditForm(data={"name": DISGUISED, "description": ""})
    form.is_valid()
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in form.errors["name"][0]


@pytest.mark.parametrize(
    "serializer",
    [
        ApiKeyCreateSerializer,
        ApiKeyUpdateSerializer,
        M2MAppCreateSerializer,
        M2MAppUpdateSerializer,
        MoveRequestSerializer,
    ],
)
@pytest.mark.parametrize("name", [DISGUISED, "a\x00b"], ids=["RLO", "NUL"])
def test_every_rest_serializer_taking_a_name_refuses_it(serializer, name):
    checked = serializer(
        data={"name": name}, partial=serializer in (ApiKeyUpdateSerializer, M2MAppUpdateSerializer)
    )

    assert not checked.is_valid()
    assert [e.code for e in checked.errors["name"]] == ["invalid_characters"]


# --- through the pages and the API ------------------------------------------------------------------


@pytest.fixture
def client(recent_owner_client) -> Client:
    return recent_owner_client


@pytest.fixture
def world(organization, owner, make_key, make_app):
    api_key, _ = make_key(name="billing")
    app = make_app(name="Billing service")
    return {"api_key": api_key, "app": app.application, "owner": owner}


PAGES = {
    "api key create": lambda w: (
        reverse("org-api-key-create", args=["acme"]),
        {"submission": "t", "owner": w["owner"].pk, "environment": "test"},
    ),
    "api key edit": lambda w: (reverse("org-api-key-edit", args=["acme", w["api_key"].key_id]), {}),
    "m2m app create": lambda w: (
        reverse("org-app-create", args=["acme"]),
        {"submission": "t", "owner": w["owner"].pk, "token_lifetime": "600"},
    ),
    "m2m app edit": lambda w: (reverse("org-app-edit", args=["acme", w["app"].pk]), {}),
    "move to m2m app": lambda w: (reverse("org-api-key-move", args=["acme", w["api_key"].key_id]), {}),
    "federated trust": lambda w: (
        reverse("org-federated-create", args=["acme", w["app"].pk]),
        {
            "preset": "github_actions",
            "issuer": "https://token.actions.githubusercontent.com",
            "subject": "repo:acme/api:ref:refs/heads/main",
            "max_token_age": "600",
        },
    ),
}


@pytest.mark.parametrize("page", PAGES.values(), ids=PAGES.keys())
def test_every_dashboard_form_taking_a_name_refuses_it(client, world, page):
    url, data = page(world)
    before = AuditEvent.objects.count()

    response = client.post(url, {**data, "name": DISGUISED, "description": ""})

    html = response.content.decode()
    assert response.status_code == 400, response.status_code
    assert 'id="id_name_error"' in html and "U+202E" in html
    assert AuditEvent.objects.count() == before
    world["api_key"].refresh_from_db()
    world["app"].refresh_from_db()
    assert (world["api_key"].name, world["app"].name) == ("billing", "Billing service")


def test_the_rest_api_answers_400_under_name(client, world):
    url = reverse("api-org-api-key-list", args=["acme"])

    response = client.post(url, {"name": DISGUISED}, content_type="application/json")

    assert response.status_code == 400
    assert "U+202E" in response.json()["name"][0]


@pytest.mark.parametrize("name", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_name_with_joiners_or_marks_is_saved(client, world, name):
    url = reverse("org-api-key-edit", args=["acme", world["api_key"].key_id])

    response = client.post(url, {"name": name, "description": ""})

    assert response.status_code == 302
    world["api_key"].refresh_from_db()
    assert world["api_key"].name == name.strip()
