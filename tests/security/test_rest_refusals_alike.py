"""The API-key and M2M REST APIs answer the same refusal the same way, in the request's own terms:
a field only a create takes is refused on a PATCH (never a 200 that changes nothing), an error
names the field the request sent, and a state refusal is `409 {"detail", "code"}`."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import ValidationError

from credentials.api_keys.api import ApiKeyViewSet
from credentials.api_keys.models import ApiKey
from credentials.api_keys.services import api_key_revoke
from credentials.leaks.models import LeakAction, LeakReport
from tokens.clients.api import M2MAppViewSet
from tokens.clients.services import m2m_app_revoke
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/orgs/acme/api-keys/"
APPS = "/api/v1/orgs/acme/m2m-apps/"


def _patch(client, path, body):
    return client.patch(path, body, "application/json")


@pytest.mark.parametrize("days", [1, -1, "x", None])
def test_an_api_keys_expiry_in_days_is_refused_on_a_patch(owner_client, make_key, days):
    """`expires_in_days` is the create request's spelling of the expiry; the PATCH cannot honour it."""
    key, _ = make_key()
    response = _patch(owner_client, f"{KEYS}{key.key_id}/", {"expires_in_days": days, "name": "renamed"})
    assert response.status_code == 400 and "expires_in_days" in response.json(), response.content
    unchanged = ApiKey.objects.get(pk=key.pk)
    assert (unchanged.expires_at, unchanged.name) == (None, key.name)


@pytest.mark.parametrize("public_key", ['{"kty": "EC"}', "", None])
def test_an_applications_public_key_is_refused_on_a_patch(owner_client, make_app, public_key):
    """`public_key` registers a first key on create; later keys go through `…/public-keys/`."""
    app = make_app()
    response = _patch(owner_client, f"{APPS}{app.application.pk}/", {"public_key": public_key})
    assert response.status_code == 400 and "public_key" in response.json(), response.content
    assert not app.application.public_keys.exists()


def _leaked(organization, kind: str, credential) -> None:
    """Record a public leak of the credential's secret (suspended: an application's live secrets
    may then be the leaked one)."""
    LeakReport.objects.create(
        organization=organization,
        kind=kind,
        object_id=credential.pk,
        credential_label=credential.name,
        token_sha256=hashlib.sha256(f"{kind}:{credential.pk}".encode()).hexdigest(),
        action_taken=LeakAction.SUSPENDED,
    )


def test_a_leaked_credentials_rotation_names_overlap_hours(owner_client, organization, make_key, make_app):
    """A leaked secret is rotated with no overlap; the 400 names the REST field, `overlap_hours`."""
    key, _ = make_key()
    _leaked(organization, "api_key", key)
    app = make_app()
    _leaked(organization, "m2m_app", app.application)
    for path in (f"{KEYS}{key.key_id}/rotate/", f"{APPS}{app.application.pk}/rotate-secret/"):
        response = owner_client.post(path, {"overlap_hours": 2}, "application/json")
        assert response.status_code == 400, response.content
        assert set(response.json()) == {"overlap_hours"}, response.json()
    assert not ApiKey.objects.filter(replaces=key).exists()
    assert app.application.secrets.count() == 1


def test_scopes_of_a_revoked_credential_are_refused_alike_for_both_kinds(
    owner, owner_client, make_key, make_app
):
    key, _ = make_key()
    api_key_revoke(api_key=key, actor=owner, reason="gone")
    app = make_app()
    m2m_app_revoke(application=app.application, actor=owner)
    scopes = {"scopes": ["orders:read", "billing:read"]}
    for path in (f"{KEYS}{key.key_id}/", f"{APPS}{app.application.pk}/"):
        response = _patch(owner_client, path, scopes)
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "inactive" and response.json()["detail"], response.json()
    assert ApiKey.objects.get(pk=key.pk).scopes == key.scopes
    assert M2MApplication.objects.get(pk=app.application.pk).status == M2MApplication.Status.REVOKED


@pytest.mark.parametrize("viewset", [ApiKeyViewSet, M2MAppViewSet])
def test_an_owner_change_meanwhile_is_a_409_conflict_for_both_kinds(viewset):
    """`governance.ownership.check_owner_unchanged` refuses with `conflict` when the credential changed
    owner between the authorisation and its lock; both kinds answer it as the move API does (the
    race itself, over HTTP: tests/credentials/api_keys/test_api_owner_race.py)."""
    answer = viewset().refusal(ValidationError("The credential changed owner meanwhile.", code="conflict"))
    assert (answer.status_code, answer.get_codes()) == (409, "conflict")
    assert answer.detail == "The credential changed owner meanwhile."
