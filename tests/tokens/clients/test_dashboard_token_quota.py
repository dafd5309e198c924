"""The token quota on the M2M application's page and in the create form."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.models import AuditEvent
from tests.tokens.clients.test_dashboard import _create
from tests.tokens.conftest import request_token
from tokens.models import M2MApplication

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue(catalogue):
    """The create form's audience is a registered resource server."""


def quota_url(app_id: int) -> str:
    return reverse("org-app-token-quota", kwargs={"org_slug": "acme", "app_id": app_id})


def post_quota(client, app_id, per_hour="", per_day="", mode="enforce"):
    return client.post(
        quota_url(app_id),
        {"quota-tokens_per_hour": per_hour, "quota-tokens_per_day": per_day, "quota-token_quota_mode": mode},
    )


@pytest.mark.usefixtures("rate_clock")
def test_the_page_shows_the_quota_and_saves_a_change_audited(owner_client, app, client):
    detail = reverse("org-app-detail", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    page = owner_client.get(detail).content.decode()
    assert "Token quota" in page and "No quota of its own" in page

    assert post_quota(owner_client, app.application.pk, per_hour="1", per_day="10").status_code == 302
    app.application.refresh_from_db()
    assert (app.application.tokens_per_hour, app.application.tokens_per_day) == (1, 10)
    assert AuditEvent.objects.filter(action="tokens.m2m_app.policy_changed").count() == 1
    assert [request_token(client, app).status_code for _ in range(2)] == [200, 429]
    assert "Enforce" in owner_client.get(detail).content.decode()

    assert post_quota(owner_client, app.application.pk, per_hour="1", mode="log_only").status_code == 302
    assert request_token(client, app).status_code == 200


@pytest.mark.parametrize(
    ("per_hour", "per_day", "mode"),
    [
        ("0", "", "enforce"),
        ("-3", "", "enforce"),
        ("ten", "", "enforce"),
        ("20", "10", "enforce"),
        ("", "", "x"),
    ],
)
def test_bad_input_is_a_form_error_not_a_change(owner_client, app, per_hour, per_day, mode):
    response = post_quota(owner_client, app.application.pk, per_hour, per_day, mode)
    assert response.status_code == 400
    app.application.refresh_from_db()
    assert app.application.tokens_per_hour is None and app.application.tokens_per_day is None
    assert not AuditEvent.objects.filter(action="tokens.m2m_app.policy_changed").exists()


def _input(html: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    assert found, f"no input {name}"
    return found.group(0)


@pytest.mark.parametrize(
    ("per_hour", "per_day", "field"),
    [
        ("ten", "", "quota-tokens_per_hour"),
        ("", "0", "quota-tokens_per_day"),
        ("20", "10", "quota-tokens_per_hour"),
    ],
)
def test_a_refused_quota_number_is_an_error_on_its_field(owner_client, app, per_hour, per_day, field):
    response = post_quota(owner_client, app.application.pk, per_hour, per_day)
    assert response.status_code == 400
    html = response.content.decode()
    control = _input(html, field)
    assert 'aria-invalid="true"' in control, f"the refused field is not marked invalid: {control}"
    described = re.search(r'aria-describedby="([^"]*)"', control)
    assert described and f"id_{field}_error" in described.group(1).split(), control
    assert f'href="#id_{field}"' in html, "the error summary does not link to the refused field"
    assert 'class="form-errors"' not in html, "the refusal is (also) a form-wide error"


@pytest.mark.parametrize(
    ("per_hour", "per_day", "message"),
    [
        ("ten", "", "Tokens per hour must be a whole number, or empty for no quota."),
        ("", "0", "Tokens per day must be a whole number from 1 to 100000000, or empty for no quota."),
        (
            "20",
            "10",
            "Tokens per hour may not be more than tokens per day (the daily quota would always bind first).",
        ),
    ],
)
def test_a_refused_quota_names_the_field_as_the_page_labels_it(owner_client, app, per_hour, per_day, message):
    html = post_quota(owner_client, app.application.pk, per_hour, per_day).content.decode()
    assert f'<p class="field-error">{message}</p>' in html
    assert "per_hour" not in html.replace("tokens_per_hour", ""), "the page names the REST key per_hour"


def test_the_create_form_puts_a_refused_quota_on_its_field(owner_client, owner, scopes):
    response = _create(owner_client, scopes, owner=owner.pk, tokens_per_hour="", tokens_per_day="-1")
    assert response.status_code == 400
    html = response.content.decode()
    assert 'aria-invalid="true"' in _input(html, "tokens_per_day") and 'href="#id_tokens_per_day"' in html
    assert "Tokens per day must be a whole number from 1 to" in html
    assert not M2MApplication.objects.filter(name="Reporting job").exists()


def test_a_member_cannot_change_the_quota_of_someone_elses_application(member_client, app):
    assert post_quota(member_client, app.application.pk, per_hour="5").status_code == 403


def test_the_create_form_sets_the_quota(owner_client, owner, scopes):
    response = _create(
        owner_client,
        scopes,
        owner=owner.pk,
        tokens_per_hour="50",
        tokens_per_day="500",
        token_quota_mode="log_only",
    )
    assert response.status_code == 201
    application = M2MApplication.objects.get(name="Reporting job")
    assert (application.tokens_per_hour, application.tokens_per_day, application.token_quota_mode) == (
        50,
        500,
        "log_only",
    )
