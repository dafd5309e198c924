"""A trust for a known platform's issuer is pinned to one owner whatever preset it names."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tokens.federation.services import federated_identity_create

pytestmark = pytest.mark.django_db

GITHUB = "https://token.actions.githubusercontent.com"


@pytest.mark.parametrize(
    "issuer,subject",
    [
        (GITHUB, "repo:*/deploy:ref:refs/heads/main"),
        (GITHUB, "repo:*:ref:refs/heads/main"),
        ("https://gitlab.com", "project_path:*:ref_type:branch:ref:main"),
    ],
)
def test_a_wildcard_owner_is_refused_for_a_platforms_issuer_even_without_its_preset(app, issuer, subject):
    """docs/m2m.md: a `*` never stands in a platform's owner part. `repo:*/deploy` on GitHub's
    issuer would trust every GitHub account's repository named `deploy`, custom preset or not."""
    with pytest.raises(ValidationError):
        federated_identity_create(
            application=app.application, actor=None, issuer=issuer, subject=subject, preset="custom"
        )


def test_the_owner_part_may_hold_a_wildcard_for_an_issuer_no_preset_fixes(app):
    identity, _approval = federated_identity_create(
        application=app.application,
        actor=None,
        issuer="https://ci.example.com",
        subject="repo:*/deploy:ref:refs/heads/main",
        preset="custom",
    )
    assert identity.subject == "repo:*/deploy:ref:refs/heads/main"
