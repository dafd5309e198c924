"""The credential chooser: each answer set recommends one kind and links to it; no JavaScript needed."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from credentials.governance.choice import recommend
from credentials.governance.org_policy import policy_update

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("answers", "kind"),
    [
        (("yes", "", ""), "api_key"),
        (("yes", "yes", "yes"), "api_key"),  # a tool that only takes a static key decides it
        (("no", "no", ""), "api_key"),
        (("no", "yes", "no"), "client_secret"),
        (("", "yes", ""), "client_secret"),
        (("no", "yes", "yes"), "private_key_jwt"),
        (("", "", "yes"), "private_key_jwt"),
    ],
)
def test_the_decision_table(answers, kind):
    assert recommend(*answers).kind == kind


def test_no_answer_no_recommendation():
    assert recommend("", "", "") is None


def url(**answers) -> str:
    return reverse("org-credential-new", args=["acme"]) + (
        "?" + "&".join(f"{k}={v}" for k, v in answers.items()) if answers else ""
    )


def test_the_page_asks_three_questions_and_shows_the_table(member_client):
    html = member_client.get(url()).content.decode()
    assert html.count('type="radio"') == 6
    assert "<script" not in html.split("<main", 1)[-1].split("</main>", 1)[0]
    assert 'method="get"' in html and "Recommended:" not in html
    for row in (
        "What travels on the wire",
        "What the service must store",
        "How it is validated",
        "How it is revoked",
        "What review it gets",
    ):
        assert row in html
    # Skippable: both create forms are one link away.
    assert (
        reverse("org-api-key-create", args=["acme"]) in html
        and reverse("org-app-create", args=["acme"]) in html
    )


@pytest.mark.parametrize(
    ("answers", "title", "link"),
    [
        ({"static_only": "yes"}, "Recommended: An API key", "/orgs/acme/api-keys/new/"),
        (
            {"static_only": "no", "oauth": "yes", "keeps_private_key": "no"},
            "Recommended: An M2M application with a client secret",
            "/orgs/acme/apps/new/?auth_method=client_secret_basic",
        ),
        (
            {"static_only": "no", "oauth": "yes", "keeps_private_key": "yes"},
            "Recommended: An M2M application with private_key_jwt",
            "/orgs/acme/apps/new/?auth_method=private_key_jwt",
        ),
    ],
)
def test_each_recommendation_links_to_its_create_form(owner_client, answers, title, link):
    html = owner_client.get(url(**answers)).content.decode()
    assert title in html
    assert f'id="create-recommended" href="{link}"' in html
    # The answers stay checked, so the result page is the form too.
    for name, value in answers.items():
        assert f'name="{name}" value="{value}"' in html


def test_private_key_jwt_is_preselected_on_the_create_form(owner_client):
    def checked(html: str) -> list[str]:
        return re.findall(r'<input type="radio" name="auth_method" value="([a-z_]+)"[^>]* checked', html)

    assert checked(owner_client.get("/orgs/acme/apps/new/?auth_method=private_key_jwt").content.decode()) == [
        "private_key_jwt"
    ]
    assert checked(owner_client.get("/orgs/acme/apps/new/").content.decode()) == ["client_secret_basic"]


def test_the_policy_is_stated_where_an_api_key_is_recommended(owner_client, organization, owner):
    policy_update(organization=organization, actor=owner, new_live_api_keys="forbidden")
    html = owner_client.get(url(static_only="yes")).content.decode()
    assert "does not allow new live API keys" in html and "test keys are still allowed" in html
    create = owner_client.get(reverse("org-api-key-create", args=["acme"])).content.decode()
    assert "new <strong>live</strong> API keys are not allowed" in create


def test_linked_from_both_lists(owner_client):
    target = reverse("org-credential-new", args=["acme"])
    assert target in owner_client.get(reverse("org-api-keys", args=["acme"])).content.decode()
    assert target in owner_client.get(reverse("org-apps", args=["acme"])).content.decode()


def test_another_organisation_is_a_404(outsider_client):
    assert outsider_client.get(url()).status_code == 404
