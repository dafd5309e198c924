"""A default rotation overlap that is not a preset (5 hours, set by staff) is kept and preselected.

What was wrong: staff may set any default overlap from 0 to 168 hours (the admin; the model allows
it), but the dashboard's policy form and the API key rotation form offered only the presets
(0, 1, 24, 72, 168). The policy page then showed no option selected, so the browser sent the first
one, 0 ("the old key stops now"): saving the page for any other change silently set the default
overlap to none. The API key rotation page preselected 0 the same way. And the client secret
rotation page offered the default but its POST, built without it, refused it. The overlap fields
now offer the form's initial value (credentials.forms.OverlapDefaultMixin) and accept any whole
number of hours from 0 to 168, as the REST API does.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from credentials.governance.org_policy import policy_for
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


class _FormReader(HTMLParser):
    """Read each form of a page as a browser would send it unchanged: {name: [values]}."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict[str, list[str]]] = []
        self._form: dict[str, list[str]] | None = None
        self._select: list | None = None  # [name, selected value, first value]
        self._textarea: list | None = None  # [name, text]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {}
            self.forms.append(self._form)
        elif self._form is None or not (a.get("name") or tag == "option"):
            return
        elif tag == "input" and a.get("type") not in ("submit", "button", "reset"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self._form.setdefault(a["name"], []).append(
                    a.get("value") or ("on" if "checked" in a else "")
                )
        elif tag == "select":
            self._select = [a["name"], None, None]
        elif tag == "option" and self._select is not None:
            self._select[2] = a.get("value", "") if self._select[2] is None else self._select[2]
            if "selected" in a:
                self._select[1] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = [a["name"], ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            name, selected, first = self._select
            self._form.setdefault(name, []).append(selected if selected is not None else first)
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form.setdefault(self._textarea[0], []).append(self._textarea[1].removeprefix("\n"))
            self._textarea = None


def form_with(html: str, field: str) -> dict[str, list[str]]:
    """Return the page's form holding `field`, as a browser would send it unchanged."""
    reader = _FormReader()
    reader.feed(html)
    return next(form for form in reader.forms if field in form)


@pytest.fixture
def default_five_hours(organization):
    policy = policy_for(organization)
    policy.default_rotation_overlap_hours = 5
    policy.save()


@pytest.fixture
def client(recent_owner_client) -> Client:
    return recent_owner_client


def test_the_policy_page_saved_as_shown_keeps_the_default_overlap(default_five_hours, client, organization):
    url = reverse("org-policy", args=[organization.slug])
    form = form_with(client.get(url).content.decode(), "default_rotation_overlap_hours")
    assert form["default_rotation_overlap_hours"] == ["5"]

    response = client.post(url, form)

    assert response.status_code == 302
    assert policy_for(organization).default_rotation_overlap_hours == 5


def test_the_policy_page_still_offers_only_the_presets_otherwise(client, organization):
    html = client.get(reverse("org-policy", args=[organization.slug])).content.decode()
    assert form_with(html, "default_rotation_overlap_hours")["default_rotation_overlap_hours"] == ["24"]
    assert 'value="5"' not in html


def test_the_api_key_rotation_preselects_the_default_and_rotates_with_it(
    default_five_hours, client, organization, make_key
):
    api_key, _ = make_key()
    url = reverse("org-api-key-rotate", args=[organization.slug, api_key.key_id])
    form = form_with(client.get(url).content.decode(), "overlap_hours")
    assert form["overlap_hours"] == ["5"]

    response = client.post(url, form)

    assert response.status_code == 200, response.status_code  # the successor's secret, shown once
    rotated = AuditEvent.objects.get(action="credentials.api_key.rotated")
    assert rotated.extra["overlap_seconds"] == 5 * 3600


def test_the_client_secret_rotation_takes_the_default_it_preselects(
    default_five_hours, client, organization, make_app
):
    app = make_app()
    page = client.get(reverse("org-app-detail", args=[organization.slug, app.application.pk]))
    form = form_with(page.content.decode(), "overlap_hours")
    assert form["overlap_hours"] == ["5"]

    client.post(reverse("org-app-secret-rotate", args=[organization.slug, app.application.pk]), form)

    rotated = AuditEvent.objects.get(action="tokens.m2m_app.secret_rotated")
    assert rotated.extra["overlap_seconds"] == 5 * 3600


@pytest.mark.parametrize("hours", ["169", "-1", "05", "5.0", "x"])
def test_an_overlap_outside_0_to_168_whole_hours_is_refused(client, organization, make_key, hours):
    api_key, _ = make_key()
    url = reverse("org-api-key-rotate", args=[organization.slug, api_key.key_id])
    form = form_with(client.get(url).content.decode(), "overlap_hours")

    response = client.post(url, {**form, "overlap_hours": hours})

    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="credentials.api_key.rotated").exists()
