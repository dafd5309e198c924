"""The API key services refuse a name that hides or reorders text, for every caller (credentials.names).

What was wrong: the dashboard forms and REST serializers checked the name, but the services did not,
so `create_api_key --name "invoice<U+202E>gpj.exe"` (and any other caller of the service, such as the
API key admin's rename) stored a name shown as "invoiceexe.jpg". `_check_name` now applies the same
validator: a `{"name": …}` error, code `invalid_characters`, naming the character.
"""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_create, api_key_update
from portal.models import AuditEvent
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

DISGUISED = "invoice\u202egpj.exe"


def test_creating_a_key_with_a_hiding_character_is_a_name_error(organization, owner, scopes):
    with pytest.raises(ValidationError) as refused:
        api_key_create(organization=organization, name=DISGUISED, owner=owner, scopes=[], actor=owner)

    (error,) = refused.value.error_dict["name"]
    assert error.code == "invalid_characters"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in " ".join(refused.value.messages)
    assert not ApiKey.objects.exists()


def test_renaming_a_key_to_one_is_a_name_error(organization, owner, scopes):
    key, _ = make_api_key(organization, owner, name="billing")
    before = AuditEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        api_key_update(api_key=key, actor=owner, name="billing\u200bexport")

    assert [e.code for e in refused.value.error_dict["name"]] == ["invalid_characters"]
    key.refresh_from_db()
    assert key.name == "billing"
    assert AuditEvent.objects.count() == before


def test_the_cli_refuses_it(owner, scopes):
    with pytest.raises(CommandError, match="U\\+202E"):
        call_command(
            "create_api_key",
            "--org",
            "acme",
            "--name",
            DISGUISED,
            "--owner",
            owner.email,
            stdout=io.StringIO(),
        )
    assert not ApiKey.objects.exists()


def test_a_name_with_a_joiner_is_still_taken(organization, owner, scopes):
    key, _ = make_api_key(organization, owner, name="\U0001f469\u200d\U0001f4bb deploy bot")
    assert key.name == "\U0001f469\u200d\U0001f4bb deploy bot"
