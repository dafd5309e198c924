"""private_key_jwt in `create_m2m_app --public-key-file` and in the admin (read-only keys)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.support.pem import pem_pair
from tokens.clients.public_keys import parse_public_key
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_pair():
    return pem_pair()


def test_create_m2m_app_with_a_public_key_file_prints_no_secret(owner, scopes, tmp_path, key_pair):
    path = tmp_path / "service.pub.pem"
    path.write_text(key_pair[1])
    out = io.StringIO()
    call_command(
        "create_m2m_app", "--org", "acme", "--name", "Keyed worker", "--owner", owner.email,
        "--scopes", "orders:read", "--public-key-file", str(path), "--json", stdout=out,
    )  # fmt: skip
    result = json.loads(out.getvalue())
    assert "client_secret" not in result
    assert result["token_endpoint_auth_method"] == "private_key_jwt"
    assert result["public_key_kid"] == parse_public_key(key_pair[1])["kid"]
    assert result["public_key_alg"] == "ES256"
    application = M2MApplication.objects.get(pk=result["id"])
    assert application.uses_private_key_jwt and not application.secrets.exists()


def test_create_m2m_app_refuses_a_private_key_file(owner, scopes, tmp_path, key_pair):
    path = tmp_path / "service.pem"
    path.write_text(key_pair[0])
    with pytest.raises(CommandError, match="private key"):
        call_command(
            "create_m2m_app", "--org", "acme", "--name", "K", "--owner", owner.email,
            "--public-key-file", str(path), stdout=io.StringIO(),
        )  # fmt: skip
    assert not M2MApplication.objects.exists()


def test_create_m2m_app_with_a_missing_file_is_a_clear_error(owner, scopes, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command(
            "create_m2m_app", "--org", "acme", "--name", "K", "--owner", owner.email,
            "--public-key-file", str(tmp_path / "missing.pem"), stdout=io.StringIO(),
        )  # fmt: skip


def test_admin_shows_keys_read_only(staff_client, owner, scopes, tmp_path, key_pair):  # noqa: F811
    from tokens.clients.services import m2m_app_create

    application, _none = m2m_app_create(
        organization=owner.memberships.get().organization,
        name="Keyed",
        owner=owner,
        actor=owner,
        auth_method="private_key_jwt",
        public_key=key_pair[1],
    )
    key = application.public_keys.get()
    page = staff_client.get(reverse("admin:tokens_m2mapplication_change", args=[application.pk]))
    assert page.status_code == 200 and key.kid in page.content.decode()
    listing = staff_client.get(reverse("admin:tokens_clientpublickey_changelist"))
    assert listing.status_code == 200 and key.kid in listing.content.decode()
    assert staff_client.get(reverse("admin:tokens_clientpublickey_add")).status_code == 403
    change = staff_client.get(reverse("admin:tokens_clientpublickey_change", args=[key.pk]))
    assert change.status_code == 200 and 'name="kid"' not in change.content.decode()


@pytest.mark.parametrize("content", ["", "\n  \n"], ids=["empty", "blank"])
def test_an_empty_public_key_file_is_a_clear_error_and_creates_nothing(owner, scopes, tmp_path, content):
    path = tmp_path / "service.pub.pem"
    path.write_text(content)
    with pytest.raises(CommandError, match="holds no public key"):
        call_command(
            "create_m2m_app", "--org", "acme", "--name", "K", "--owner", owner.email,
            "--public-key-file", str(path), "--json", stdout=io.StringIO(),
        )  # fmt: skip
    assert not M2MApplication.objects.exists()
