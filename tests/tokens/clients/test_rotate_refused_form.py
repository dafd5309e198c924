"""A secret rotation refused for its hidden one-use token says so, not "Choose an overlap …"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tokens.models import ClientSecret

pytestmark = pytest.mark.django_db


def _refused(client, app, data) -> str:
    """Post a rotation; check it made no secret and return the flashed message."""
    before = ClientSecret.objects.count()
    url = reverse("org-app-secret-rotate", kwargs={"org_slug": "acme", "app_id": app.application.pk})
    response = client.post(url, data, follow=True)
    assert ClientSecret.objects.count() == before
    return " ".join(str(m) for m in response.context["messages"])


@pytest.mark.parametrize(
    ("submission", "said"),
    [
        ("s" * 65, "Submission: Ensure this value has at most 64 characters (it has 65)."),
        ("s\x00", "Submission: Null characters are not allowed."),
    ],
    ids=["too-long", "nul"],
)
def test_a_refused_submission_token_is_named(recent_owner_client, make_app, submission, said):
    app = make_app()
    assert _refused(recent_owner_client, app, {"overlap_hours": "24", "submission": submission}) == said


@pytest.mark.parametrize("overlap", ["", "-1", "169", "1e3"])
def test_a_refused_overlap_still_asks_for_one(recent_owner_client, make_app, overlap):
    app = make_app()
    said = _refused(recent_owner_client, app, {"overlap_hours": overlap, "submission": "s" * 65})
    assert said == "Choose an overlap between 0 and 168 hours."
