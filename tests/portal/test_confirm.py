"""Without JavaScript a one-click destructive action asks first: its GET is a question (portal.confirm)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.models import AuditEvent, Membership
from tests.factories import make_m2m_app
from tokens.models import M2MApplication


@pytest.fixture
def application(organization, owner, scopes):
    app, _secret = make_m2m_app(organization, owner, name="Invoice worker")
    return app


def _revoke_url(application) -> str:
    return reverse("org-app-revoke", kwargs={"org_slug": "acme", "app_id": application.pk})


def test_get_asks_and_changes_nothing(owner_client, application):
    url = _revoke_url(application)
    response = owner_client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Revoke “Invoice worker”?</h1>" in html
    form = re.search(rf'<form method="post" action="{url}".*?</form>', html, flags=re.S)
    assert form and "csrfmiddlewaretoken" in form.group(0)
    assert "Revoke application</button>" in form.group(0)
    cancel = reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": application.pk})
    assert f'<a href="{cancel}">Cancel</a>' in html
    assert M2MApplication.objects.get(pk=application.pk).status == "active"
    assert not AuditEvent.objects.filter(action="tokens.m2m_app.revoked").exists()


def test_a_plain_post_still_acts_at_once(owner_client, application):
    response = owner_client.post(_revoke_url(application))
    assert response.status_code == 302
    assert M2MApplication.objects.get(pk=application.pk).status == "revoked"


def test_other_methods_are_refused(owner_client, application):
    for method in ("put", "patch", "delete"):
        assert getattr(owner_client, method)(_revoke_url(application)).status_code == 405


def test_the_question_is_checked_like_the_action(member_client, outsider_client, application):
    """Role and target checks apply to the GET: a member may not revoke the owner's application (403),
    another organisation's member does not learn it exists (404); neither sees its name."""
    for client, status in ((member_client, 403), (outsider_client, 404)):
        response = client.get(_revoke_url(application))
        assert response.status_code == status
        assert "Invoice worker" not in response.content.decode()


def test_leaving_and_removing_ask_different_questions(owner_client, owner, member, organization):
    mine = Membership.objects.get(user=owner, organization=organization)
    theirs = Membership.objects.get(user=member, organization=organization)
    leave = owner_client.get(reverse("org-member-remove", kwargs={"org_slug": "acme", "member_id": mine.pk}))
    remove = owner_client.get(
        reverse("org-member-remove", kwargs={"org_slug": "acme", "member_id": theirs.pk})
    )
    assert "<h1>Leave Acme Inc?</h1>" in leave.content.decode()
    assert "<h1>Remove dev@acme.test from Acme Inc?</h1>" in remove.content.decode()
    assert Membership.objects.filter(organization=organization).count() == 2


def test_the_pages_hide_their_forms_until_the_script_shows_them(owner_client, application):
    """Without JavaScript a data-confirm form would act on one click: it is hidden, and a link leads to
    the question instead (portal.js shows the form and asks with window.confirm)."""
    html = owner_client.get(
        reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": application.pk})
    ).content.decode()
    url = _revoke_url(application)
    assert re.search(rf'<form method="post" action="{url}" data-confirm="[^"]+" hidden>', html)
    assert f'<noscript><a href="{url}" class="btn btn-danger">Revoke application</a></noscript>' in html
