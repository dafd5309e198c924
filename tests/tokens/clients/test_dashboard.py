"""Dashboard pages for M2M applications: list, create/reveal, detail, rotate, revoke, permissions, audit."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.models import AuditEvent
from tests.tokens.conftest import AppCredentials, request_token
from tokens.models import ClientSecret, M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue(catalogue):
    """The form's default audience is a registered resource server."""


def _create(client, scopes, **overrides):
    data = {
        "name": "Reporting job",
        "description": "Nightly reports",
        "owner": "",
        "scopes": ["orders:read"],
        "audiences": "https://reports.example.com\n",
        "token_lifetime": "600",
        **overrides,
    }
    return client.post(reverse("org-app-create", kwargs={"org_slug": "acme"}), data)


def _revealed_secret(response) -> str:
    match = re.search(rb'id="client-secret">(ips_[0-9A-Za-z]{32})<', response.content)
    assert match, "the secret is revealed"
    return match.group(1).decode()


def test_create_reveals_client_id_and_secret_once(owner_client, owner, scopes, client):
    response = _create(owner_client, scopes, owner=owner.pk)
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    application = M2MApplication.objects.get()
    secret = _revealed_secret(response)
    content = response.content.decode()
    assert application.client_id in content
    assert 'data-copy-target="client-secret"' in content and 'data-copy-target="client-id"' in content
    assert f"curl -s -u '{application.client_id}:{secret}' -d grant_type=client_credentials" in content
    assert application.token_lifetime == 600
    assert application.allowed_audiences == ["https://reports.example.com"]
    # The secret works, and is never shown again.
    assert (
        request_token(client, AppCredentials(application, application.client_id, secret)).status_code == 200
    )
    detail = owner_client.get(
        reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": application.pk})
    )
    assert detail.status_code == 200
    assert secret not in detail.content.decode()
    assert (
        AuditEvent.objects.filter(action="tokens.m2m_app.created", target_id=str(application.pk)).count() == 1
    )


def test_create_form_errors_are_shown(owner_client, owner, scopes):
    response = _create(
        owner_client, scopes, owner=owner.pk, name="", token_lifetime="60", audiences="not a uri"
    )
    assert response.status_code == 400
    assert b"field-error" in response.content
    assert M2MApplication.objects.count() == 0


def test_bad_audience_is_a_field_error(owner_client, owner, scopes):
    response = _create(owner_client, scopes, owner=owner.pk, audiences="https://x.example/#frag")
    assert response.status_code == 400
    assert M2MApplication.objects.count() == 0


def test_member_can_create_only_for_themselves(member_client, member, owner, scopes):
    assert _create(member_client, scopes, owner=owner.pk).status_code == 400
    assert _create(member_client, scopes, owner=member.pk).status_code == 201


def test_list_page_and_query_count(owner_client, make_app, django_assert_max_num_queries):
    for n in range(5):
        make_app(name=f"Service {n}")
    url = reverse("org-apps", kwargs={"org_slug": "acme"})
    with django_assert_max_num_queries(8):
        response = owner_client.get(url)
    assert response.status_code == 200
    for n in range(5):
        assert f"Service {n}".encode() in response.content


def test_empty_list_explains_what_to_do(owner_client):
    response = owner_client.get(reverse("org-apps", kwargs={"org_slug": "acme"}))
    assert b"No M2M applications yet" in response.content


def test_org_home_shows_the_card(owner_client, app):
    response = owner_client.get(reverse("org-home", kwargs={"org_slug": "acme"}))
    assert reverse("org-apps", kwargs={"org_slug": "acme"}).encode() in response.content
    assert b"M2M application" in response.content


def test_rotate_reveals_new_secret_and_keeps_old_one_for_the_overlap(owner_client, app, client):
    url = reverse("org-app-secret-rotate", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    response = owner_client.post(url, {"overlap_hours": "24"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    new_secret = _revealed_secret(response)
    assert new_secret != app.client_secret
    assert request_token(client, app).status_code == 200
    assert request_token(client, app, secret=new_secret).status_code == 200
    assert AuditEvent.objects.filter(action="tokens.m2m_app.secret_rotated").count() == 1
    detail = owner_client.get(
        reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    )
    # The old secret says in words that it was rotated and until when it still works.
    stops = app.application.secrets.earliest("created_at").expires_at
    assert b'Rotated</span> <span class="status-note">works until' in detail.content
    assert f"{stops:%Y-%m-%d %H:%M} UTC".encode() in detail.content


def test_rotate_with_bad_overlap_is_refused(owner_client, app):
    url = reverse("org-app-secret-rotate", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    response = owner_client.post(url, {"overlap_hours": "500"})
    assert response.status_code == 302
    assert ClientSecret.objects.count() == 1


def test_revoke_secret(owner_client, app, client):
    secret = app.application.secrets.get()
    url = reverse(
        "org-app-secret-revoke",
        kwargs={"org_slug": "acme", "app_id": app.application.pk, "secret_id": secret.pk},
    )
    assert owner_client.post(url).status_code == 302
    assert request_token(client, app).status_code == 401
    assert AuditEvent.objects.filter(action="tokens.m2m_app.secret_revoked").count() == 1


def test_revoke_application(owner_client, app, client):
    url = reverse("org-app-revoke", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    assert owner_client.post(url).status_code == 302
    app.application.refresh_from_db()
    assert app.application.status == "revoked"
    assert request_token(client, app).status_code == 401
    assert AuditEvent.objects.filter(action="tokens.m2m_app.revoked").count() == 1


def test_revoking_says_what_it_cannot_reach(owner_client, app):
    """A token validated offline (JWKS, as docs/validating-tokens.md shows) is accepted until it
    expires: the page, the confirmation and the outcome say so, with the application's lifetime."""
    kwargs = {"org_slug": "acme", "app_id": app.application.pk}
    lifetime = f"at most {app.application.token_lifetime} seconds"
    page = owner_client.get(reverse("org-app-detail", kwargs=kwargs)).content.decode()
    assert "validate tokens offline" in page and lifetime in page
    asked = owner_client.get(reverse("org-app-revoke", kwargs=kwargs)).content.decode()
    assert "validate tokens offline" in asked and lifetime in asked
    done = owner_client.post(reverse("org-app-revoke", kwargs=kwargs), follow=True)
    assert [str(m) for m in done.context["messages"]] == [
        f"{app.application.name} was revoked. Its secrets and tokens stop working now. Services that "
        "validate tokens offline, against the JWKS, accept tokens already issued until they expire "
        f"({lifetime})."
    ]


def test_member_cannot_manage_someone_elses_application(member_client, app):
    kwargs = {"org_slug": "acme", "app_id": app.application.pk}
    assert member_client.get(reverse("org-app-detail", kwargs=kwargs)).status_code == 200
    assert member_client.post(reverse("org-app-revoke", kwargs=kwargs)).status_code == 403
    assert (
        member_client.post(
            reverse("org-app-secret-rotate", kwargs=kwargs), {"overlap_hours": "1"}
        ).status_code
        == 403
    )
    app.application.refresh_from_db()
    assert app.application.status == "active"


def test_member_manages_their_own_application(member_client, member, make_app):
    creds = make_app(app_owner=member)
    url = reverse("org-app-revoke", kwargs={"org_slug": "acme", "app_id": creds.application.pk})
    assert member_client.post(url).status_code == 302


def test_secret_of_another_application_is_404(owner_client, make_app, app):
    sibling = make_app(name="Sibling")
    url = reverse(
        "org-app-secret-revoke",
        kwargs={
            "org_slug": "acme",
            "app_id": app.application.pk,
            "secret_id": sibling.application.secrets.get().pk,
        },
    )
    assert owner_client.post(url).status_code == 404


def test_other_organisations_application_is_404(owner_client, other_app):
    for name in ("org-app-detail", "org-app-revoke", "org-app-secret-rotate"):
        url = reverse(name, kwargs={"org_slug": "acme", "app_id": other_app.application.pk})
        assert owner_client.post(url).status_code == 404 or owner_client.get(url).status_code == 404
    url = reverse("org-app-detail", kwargs={"org_slug": "globex", "app_id": other_app.application.pk})
    assert owner_client.get(url).status_code == 404


def test_the_new_application_form_starts_with_its_name_and_ends_with_the_optional_limits(owner_client):
    """Keyboard and screen-reader users meet the fields in document order: the optional token quota
    came before the name (its form class's fields first)."""
    form = owner_client.get(reverse("org-app-create", kwargs={"org_slug": "acme"})).context["form"]
    names = [name for name in form.fields if not form[name].is_hidden]  # the one-use submission token
    assert names[0] == "name"
    assert names.index("public_key") < names.index("tokens_per_hour") < names.index("token_quota_mode")
